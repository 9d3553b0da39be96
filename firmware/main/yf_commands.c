/* The console task and the ops yf_core's yf_device answers commands through. Every rule about commands
 * (decoding, ranges, the pcm source gate, seq tracking, detector updates, reply shapes) is yf_device's, the
 * same code the virtual board runs; here are only the FreeRTOS/ESP-IDF actions behind each op. */
#include <string.h>

#include "esp_heap_caps.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "yf_app.h"
#include "yf_console.h"
#include "yf_inference.h"
#include "yf_model_params.h"

static yf_device_t *s_dev;   /* owned by the console task, in PSRAM when there is some (~41 KB) */
static char *s_stats_line;   /* the console task's stats line */

static int op_err(yf_op_err_t *e, const char *code, const char *msg)
{
    e->code = code;
    e->msg = msg;
    return -1;
}

static void op_emit(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    yf_emit(line, len);
}

static int op_hello(void *ctx, yf_hello_t *h, yf_op_err_t *e)
{
    (void)ctx;
    (void)e;
    yf_fill_hello(h);
    return 0;
}

static int op_source(void *ctx, yf_src_t src, yf_op_err_t *e)
{
    (void)ctx;
    (void)e;
    atomic_store(&g_app.src, (int)src);
    atomic_store(&g_app.restart_audio, true); /* patches count from 0 again */
    /* Reply only once the frontend has dropped the old audio, so the host's next pcm is not dropped. */
    xSemaphoreTake(g_app.restart_done, pdMS_TO_TICKS(YF_RESTART_WAIT_MS));
    xSemaphoreTake(g_app.det_lock, portMAX_DELAY);
    yf_detect_reset(&g_app.det);
    xSemaphoreGive(g_app.det_lock);
    return 0;
}

static int op_pcm(void *ctx, const int16_t *pcm, size_t n, size_t *accepted, yf_op_err_t *e)
{
    (void)ctx;
    (void)e;
    xSemaphoreTake(g_app.pcm_write_lock, portMAX_DELAY);
    const size_t sent = xStreamBufferSend(g_app.pcm_ring, pcm, n * sizeof(int16_t), pdMS_TO_TICKS(YF_HOST_PCM_WAIT_MS));
    xSemaphoreGive(g_app.pcm_write_lock);
    *accepted = sent / sizeof(int16_t);
    return 0;
}

static int op_patch(void *ctx, const yf_patch_req_t *r, yf_op_err_t *e)
{
    (void)ctx;
    if (!g_app.model_ok) {
        return op_err(e, YF_E_MODEL, "no model loaded (see the err at boot)");
    }
    if (xSemaphoreTake(g_app.host_patch_free, pdMS_TO_TICKS(YF_HOST_PATCH_WAIT_MS)) != pdTRUE) {
        return op_err(e, YF_E_BUSY, "the previous patch is still being inferred");
    }
    memcpy(g_app.host_patch, r->q, YF_PROTO_PATCH_BYTES);
    const yf_job_t j = {.kind = YF_JOB_HOST_PATCH, .id = r->id, .seq = r->seq, .seq_gap = r->seq_gap,
                        .expected = r->expected};
    yf_tasks_submit(&j);
    return 0;
}

static void op_stream(void *ctx, bool scores, bool patches)
{
    (void)ctx;
    atomic_store(&g_app.stream_scores, scores);
    atomic_store(&g_app.stream_patches, patches);
}

static int op_detector_get(void *ctx, yf_detect_config_t *cfg, uint32_t *n_labels, yf_op_err_t *e)
{
    (void)ctx;
    (void)e;
    xSemaphoreTake(g_app.det_lock, portMAX_DELAY);
    *cfg = g_app.det.cfg;
    xSemaphoreGive(g_app.det_lock);
    *n_labels = YF_MODEL_NUM_CLASSES;
    return 0;
}

static int op_detector_set(void *ctx, const yf_detect_config_t *cfg, yf_op_err_t *e)
{
    (void)ctx;
    static yf_detect_t next; /* ~4.5 KB: not on the console task's stack */
    if (yf_detect_init(&next, cfg) != 0) {
        return op_err(e, YF_E_ARG, "detector setting out of range");
    }
    xSemaphoreTake(g_app.det_lock, portMAX_DELAY);
    g_app.det = next;
    xSemaphoreGive(g_app.det_lock);
    return 0;
}

static int op_bench(void *ctx, uint32_t id, uint32_t n, yf_op_err_t *e)
{
    (void)ctx;
    if (!g_app.model_ok) {
        return op_err(e, YF_E_MODEL, "no model loaded (see the err at boot)");
    }
    const yf_job_t j = {.kind = YF_JOB_BENCH, .id = id, .n = n};
    yf_tasks_submit(&j);
    return 0;
}

static void op_reset(void *ctx)
{
    (void)ctx;
    vTaskDelay(pdMS_TO_TICKS(YF_RESET_REPLY_MS)); /* let the reply leave */
    esp_restart();
}

static const yf_device_ops_t s_ops = {
    .emit = op_emit,
    .hello = op_hello,
    .extra = NULL,
    .source = op_source,
    .pcm = op_pcm,
    .patch = op_patch,
    .stream = op_stream,
    .detector_get = op_detector_get,
    .detector_set = op_detector_set,
    .bench = op_bench,
    .reset = op_reset,
};

static void emit_stats(void)
{
    yf_infer_info_t ii;
    yf_infer_info(&ii);
    uint32_t hwm[YF_NUM_TASKS];
    for (size_t i = 0; i < YF_NUM_TASKS; ++i) {
        hwm[i] = yf_task_hwm(i);
    }
    yf_stats_t s = {
        .uptime_ms = (uint32_t)(esp_timer_get_time() / 1000),
        .inferences = atomic_load(&g_app.inferences),
        .dropped_samples = atomic_load(&g_app.dropped_samples),
        .heap_free = (uint32_t)heap_caps_get_free_size(MALLOC_CAP_INTERNAL),
        .heap_min = (uint32_t)heap_caps_get_minimum_free_size(MALLOC_CAP_INTERNAL),
        .psram_free = (uint32_t)heap_caps_get_free_size(MALLOC_CAP_SPIRAM),
        .psram_min = (uint32_t)heap_caps_get_minimum_free_size(MALLOC_CAP_SPIRAM),
        .task_names = yf_task_names,
        .task_hwm = hwm,
        .n_tasks = YF_NUM_TASKS,
        .arena_size = (uint32_t)ii.arena_size,
        .arena_used = (uint32_t)ii.arena_used,
        .arena_where = ii.arena_where,
        .patches_skipped = atomic_load(&g_app.skipped_patches),
    };
    yf_device_stats(s_dev, &s, s_stats_line, YF_OUT_LINE_MAX);
}

static void console_task(void *arg)
{
    (void)arg;
    static uint8_t rx[YF_CONSOLE_RX_BYTES];
    int64_t next_stats = esp_timer_get_time() + YF_STATS_PERIOD_US;
    for (;;) {
        const size_t n = yf_console_read(rx, sizeof rx, YF_CONSOLE_READ_MS);
        yf_device_feed(s_dev, rx, n);
        if (esp_timer_get_time() >= next_stats) {
            next_stats += YF_STATS_PERIOD_US;
            emit_stats();
        }
    }
}

int yf_commands_init(void)
{
    s_dev = yf_alloc_prefer_psram(sizeof *s_dev);
    s_stats_line = yf_alloc_prefer_psram(YF_OUT_LINE_MAX);
    if (s_dev == NULL || s_stats_line == NULL) {
        return -1;
    }
    yf_device_init(s_dev, &s_ops, NULL, YF_SRC_MIC);
    return 0;
}

void yf_commands_start(TaskHandle_t *task)
{
    xTaskCreatePinnedToCore(console_task, "yf_console", YF_TASK_CONSOLE_STACK, NULL, YF_TASK_CONSOLE_PRIO, task,
                            YF_TASK_CONSOLE_CORE);
}
