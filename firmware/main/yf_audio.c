/* Microphone capture: the ESP-IDF 5.x I2S channel driver (driver/i2s_std.h or driver/i2s_pdm.h) reads by DMA;
 * this task converts to int16 and pushes into the PCM ring. A full ring drops the samples that do not fit
 * and counts them in g_app.dropped_samples (reported in `stats`), never silently. */
#include <string.h>

#include "driver/i2s_pdm.h"
#include "driver/i2s_std.h"
#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "yf_app.h"
#include "yf_board_config.h"

static const char *TAG = "yf_audio";

#define YF_MIC_CHUNK 320 /* samples per read: 20 ms */
#define YF_MIC_DMA_DESCS 8
#define YF_MIC_DMA_FRAMES 320    /* 8 x 20 ms of DMA buffers */
#define YF_MIC_READ_MS 1000      /* i2s_channel_read timeout: a silent bus is retried, not fatal */
/* Core 0 with the frontend; highest application priority so DMA buffers never overrun. Stack in bytes. */
#define YF_CAP_STACK 4096
#define YF_CAP_PRIO 10
#define YF_CAP_CORE 0

static i2s_chan_handle_t s_rx;
static TaskHandle_t s_task;

static int mic_init(void)
{
    i2s_chan_config_t chan = I2S_CHANNEL_DEFAULT_CONFIG(I2S_NUM_0, I2S_ROLE_MASTER);
    chan.dma_desc_num = YF_MIC_DMA_DESCS;
    chan.dma_frame_num = YF_MIC_DMA_FRAMES;
    esp_err_t e = i2s_new_channel(&chan, NULL, &s_rx);
    if (e != ESP_OK) {
        ESP_LOGE(TAG, "i2s_new_channel: %s", esp_err_to_name(e));
        return -1;
    }
#if YF_MIC_I2S_STD
    /* INMP441-class: 24-bit samples left-aligned in 32-bit Philips slots; L/R pin selects the slot. */
    i2s_std_config_t cfg = {
        .clk_cfg = I2S_STD_CLK_DEFAULT_CONFIG(16000),
        .slot_cfg = I2S_STD_PHILIPS_SLOT_DEFAULT_CONFIG(I2S_DATA_BIT_WIDTH_32BIT, I2S_SLOT_MODE_MONO),
        .gpio_cfg = {
            .mclk = I2S_GPIO_UNUSED,
            .bclk = (gpio_num_t)YF_MIC_PIN_BCLK,
            .ws = (gpio_num_t)YF_MIC_PIN_WS,
            .dout = I2S_GPIO_UNUSED,
            .din = (gpio_num_t)YF_MIC_PIN_DIN,
            .invert_flags = {.mclk_inv = false, .bclk_inv = false, .ws_inv = false},
        },
    };
    cfg.slot_cfg.slot_mask = YF_MIC_SLOT_RIGHT ? I2S_STD_SLOT_RIGHT : I2S_STD_SLOT_LEFT;
    e = i2s_channel_init_std_mode(s_rx, &cfg);
#else
    i2s_pdm_rx_config_t cfg = {
        .clk_cfg = I2S_PDM_RX_CLK_DEFAULT_CONFIG(16000),
        .slot_cfg = I2S_PDM_RX_SLOT_DEFAULT_CONFIG(I2S_DATA_BIT_WIDTH_16BIT, I2S_SLOT_MODE_MONO),
        .gpio_cfg = {
            .clk = (gpio_num_t)YF_MIC_PIN_CLK,
            .din = (gpio_num_t)YF_MIC_PIN_DIN,
            .invert_flags = {.clk_inv = false},
        },
    };
    e = i2s_channel_init_pdm_rx_mode(s_rx, &cfg);
#endif
    if (e == ESP_OK) {
        e = i2s_channel_enable(s_rx);
    }
    if (e != ESP_OK) {
        ESP_LOGE(TAG, "microphone init: %s", esp_err_to_name(e));
        return -1;
    }
    return 0;
}

/* Push samples into the ring without blocking; count what does not fit. */
static void ring_put(const int16_t *pcm, size_t n)
{
    xSemaphoreTake(g_app.pcm_write_lock, portMAX_DELAY);
    size_t sent = xStreamBufferSend(g_app.pcm_ring, pcm, n * sizeof(int16_t), 0);
    xSemaphoreGive(g_app.pcm_write_lock);
    if (sent < n * sizeof(int16_t)) {
        atomic_fetch_add(&g_app.dropped_samples, (unsigned)(n - sent / sizeof(int16_t)));
    }
}

static void capture_task(void *arg)
{
    (void)arg;
#if YF_MIC_I2S_STD
    static int32_t raw[YF_MIC_CHUNK];
#else
    static int16_t raw[YF_MIC_CHUNK];
#endif
    static int16_t pcm[YF_MIC_CHUNK];
    for (;;) {
        size_t got = 0;
        if (i2s_channel_read(s_rx, raw, sizeof raw, &got, YF_MIC_READ_MS) != ESP_OK || got == 0) {
            continue;
        }
        const size_t n = got / sizeof raw[0];
        if (atomic_load(&g_app.src) != YF_SRC_MIC) {
            continue; /* keep the DMA drained while the host feeds audio */
        }
#if YF_MIC_I2S_STD
        for (size_t i = 0; i < n; ++i) {
            pcm[i] = (int16_t)(raw[i] >> 16); /* top 16 of the 24 valid bits */
        }
#else
        memcpy(pcm, raw, n * sizeof pcm[0]);
#endif
        ring_put(pcm, n);
    }
}

int yf_audio_start(void)
{
    if (mic_init() != 0) {
        return -1;
    }
    if (xTaskCreatePinnedToCore(capture_task, "yf_capture", YF_CAP_STACK, NULL, YF_CAP_PRIO, &s_task, YF_CAP_CORE) !=
        pdPASS) {
        return -1;
    }
    return 0;
}

uint32_t yf_audio_task_hwm(void)
{
    return s_task != NULL ? (uint32_t)uxTaskGetStackHighWaterMark(s_task) : 0;
}
