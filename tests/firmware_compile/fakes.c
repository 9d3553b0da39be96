/* Host stand-ins for the ESP-IDF, FreeRTOS and TFLite Micro calls of firmware/main/yf_tasks.c and
 * yf_model_store.c, so that those files, compiled exactly as the compile gate compiles them (real ESP-IDF
 * v5.5 headers, which also check every prototype below), can run on the host (tests/test_firmware_units.py).
 * Each stand-in does the least the firmware relies on and records what it was asked in a trace:
 *   I = Invoke, D<n> = vTaskDelay(n ticks), R<n> = a read of n bytes, H<addr>,<len> = hardware sha256.
 * A blocking receive on an empty queue ends the scripted run (longjmp back to the driver). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootloader_common.h"
#include "esp_heap_caps.h"
#include "esp_log.h"
#include "esp_partition.h"
#include "esp_spiffs.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "freertos/semphr.h"
#include "freertos/stream_buffer.h"
#include "freertos/task.h"
#include "yf_app.h"
#include "yf_console.h"
#include "yf_inference.h"
#include "yf_sha256.h"

#include "fakes.h"

char fk_trace[1 << 16];
jmp_buf fk_stop;
fk_task_t fk_tasks[8];
int fk_n_tasks;
char fk_lines[1 << 14];
int fk_invoke_rc;
const uint8_t *fk_flash;     /* the "flash" a partition test maps */
size_t fk_flash_bytes;
uint32_t fk_part_address;

static void trace(const char *fmt, ...)
{
    size_t n = strlen(fk_trace);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fk_trace + n, sizeof fk_trace - n, fmt, ap);
    va_end(ap);
}

/* ---- FreeRTOS: queues and semaphores as plain FIFOs (item size 0 = a counting semaphore) ------------- */

struct QueueDefinition {
    size_t len, size, count, head;
    uint8_t *items;
};

QueueHandle_t xQueueGenericCreate(const UBaseType_t uxQueueLength, const UBaseType_t uxItemSize,
                                  const uint8_t ucQueueType)
{
    (void)ucQueueType;
    struct QueueDefinition *q = calloc(1, sizeof *q);
    q->len = uxQueueLength;
    q->size = uxItemSize;
    q->items = calloc(uxQueueLength ? uxQueueLength : 1, uxItemSize ? uxItemSize : 1);
    return q;
}

QueueHandle_t xQueueCreateMutex(const uint8_t ucQueueType)
{
    QueueHandle_t q = xQueueGenericCreate(1, 0, ucQueueType);
    q->count = 1; /* a new mutex is free */
    return q;
}

BaseType_t xQueueGenericSend(QueueHandle_t xQueue, const void *const pvItemToQueue, TickType_t xTicksToWait,
                             const BaseType_t xCopyPosition)
{
    (void)xTicksToWait;
    (void)xCopyPosition;
    if (xQueue == NULL) {
        fprintf(stderr, "fake FreeRTOS: send/give on a NULL queue (configASSERT on the chip)\n");
        abort();
    }
    if (xQueue->count == xQueue->len) {
        return pdFALSE;
    }
    if (xQueue->size) {
        memcpy(xQueue->items + ((xQueue->head + xQueue->count) % xQueue->len) * xQueue->size, pvItemToQueue,
               xQueue->size);
    }
    xQueue->count++;
    return pdTRUE;
}

static BaseType_t take(QueueHandle_t q, void *out, TickType_t wait)
{
    if (q == NULL) {
        fprintf(stderr, "fake FreeRTOS: receive/take on a NULL queue (configASSERT on the chip)\n");
        abort();
    }
    if (q->count == 0) {
        if (wait == portMAX_DELAY) {
            longjmp(fk_stop, 1); /* would block forever: the scripted run is over */
        }
        return pdFALSE;
    }
    if (q->size) {
        memcpy(out, q->items + q->head * q->size, q->size);
    }
    q->head = (q->head + 1) % q->len;
    q->count--;
    return pdTRUE;
}

BaseType_t xQueueReceive(QueueHandle_t xQueue, void *const pvBuffer, TickType_t xTicksToWait)
{
    return take(xQueue, pvBuffer, xTicksToWait);
}

BaseType_t xQueueSemaphoreTake(QueueHandle_t xQueue, TickType_t xTicksToWait)
{
    return take(xQueue, NULL, xTicksToWait);
}

struct StreamBufferDef_t {
    size_t size;
};

StreamBufferHandle_t xStreamBufferGenericCreate(size_t xBufferSizeBytes, size_t xTriggerLevelBytes,
                                                BaseType_t xIsMessageBuffer,
                                                StreamBufferCallbackFunction_t pxSendCompletedCallback,
                                                StreamBufferCallbackFunction_t pxReceiveCompletedCallback)
{
    (void)xTriggerLevelBytes;
    (void)xIsMessageBuffer;
    (void)pxSendCompletedCallback;
    (void)pxReceiveCompletedCallback;
    struct StreamBufferDef_t *s = calloc(1, sizeof *s);
    s->size = xBufferSizeBytes;
    return s;
}

size_t xStreamBufferSend(StreamBufferHandle_t xStreamBuffer, const void *pvTxData, size_t xDataLengthBytes,
                         TickType_t xTicksToWait)
{
    (void)xStreamBuffer;
    (void)pvTxData;
    (void)xTicksToWait;
    return xDataLengthBytes;
}

size_t xStreamBufferReceive(StreamBufferHandle_t xStreamBuffer, void *pvRxData, size_t xBufferLengthBytes,
                            TickType_t xTicksToWait)
{
    (void)xStreamBuffer;
    (void)pvRxData;
    (void)xBufferLengthBytes;
    (void)xTicksToWait;
    return 0;
}

BaseType_t xStreamBufferReset(StreamBufferHandle_t xStreamBuffer)
{
    (void)xStreamBuffer;
    return pdPASS;
}

BaseType_t xTaskCreatePinnedToCore(TaskFunction_t pxTaskCode, const char *const pcName, const uint32_t ulStackDepth,
                                   void *const pvParameters, UBaseType_t uxPriority, TaskHandle_t *const pxCreatedTask,
                                   const BaseType_t xCoreID)
{
    (void)pvParameters;
    fk_tasks[fk_n_tasks] = (fk_task_t){pxTaskCode, pcName, ulStackDepth, (unsigned)uxPriority, (int)xCoreID};
    if (pxCreatedTask != NULL) {
        *pxCreatedTask = (TaskHandle_t)&fk_tasks[fk_n_tasks];
    }
    fk_n_tasks++;
    return pdPASS;
}

void vTaskDelay(const TickType_t xTicksToDelay)
{
    trace("D%lu ", (unsigned long)xTicksToDelay);
}

UBaseType_t uxTaskGetStackHighWaterMark(TaskHandle_t xTask)
{
    (void)xTask;
    return 0;
}

/* ---- esp_system, esp_timer, heap_caps, log ----------------------------------------------------------- */

void esp_restart(void)
{
    abort();
}

int64_t esp_timer_get_time(void)
{
    static int64_t t;
    return t += 1000;
}

void *heap_caps_malloc(size_t size, uint32_t caps)
{
    (void)caps;
    return malloc(size);
}

void *heap_caps_aligned_alloc(size_t alignment, size_t size, uint32_t caps)
{
    (void)caps;
    return aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment);
}

void heap_caps_free(void *ptr)
{
    free(ptr);
}

size_t heap_caps_get_free_size(uint32_t caps)
{
    (void)caps;
    return 0;
}

size_t heap_caps_get_minimum_free_size(uint32_t caps)
{
    (void)caps;
    return 0;
}

size_t heap_caps_get_largest_free_block(uint32_t caps)
{
    (void)caps;
    return 0;
}

uint32_t esp_log_timestamp(void)
{
    return 0;
}

void esp_log(esp_log_config_t config, const char *tag, const char *format, ...)
{
    (void)config;
    (void)tag;
    (void)format;
}

const char *esp_err_to_name(esp_err_t code)
{
    return code == ESP_OK ? "ESP_OK" : "ESP_FAIL";
}

/* ---- storage: SPIFFS mount, partition map, ESP-IDF's flash sha256 ------------------------------------ */

esp_err_t esp_vfs_spiffs_register(const esp_vfs_spiffs_conf_t *conf)
{
    (void)conf;
    return ESP_OK;
}

esp_err_t esp_vfs_spiffs_unregister(const char *partition_label)
{
    (void)partition_label;
    return ESP_OK;
}

static esp_partition_t s_part;

const esp_partition_t *esp_partition_find_first(esp_partition_type_t type, esp_partition_subtype_t subtype,
                                                const char *label)
{
    (void)subtype;
    if (fk_flash == NULL || type != ESP_PARTITION_TYPE_DATA) {
        return NULL;
    }
    s_part.type = type;
    s_part.address = fk_part_address;
    s_part.size = (uint32_t)fk_flash_bytes;
    snprintf(s_part.label, sizeof s_part.label, "%s", label);
    return &s_part;
}

esp_err_t esp_partition_mmap(const esp_partition_t *partition, size_t offset, size_t size,
                             esp_partition_mmap_memory_t memory, const void **out_ptr,
                             esp_partition_mmap_handle_t *out_handle)
{
    (void)memory;
    if (offset + size > partition->size) {
        return ESP_ERR_INVALID_ARG;
    }
    *out_ptr = fk_flash + offset;
    *out_handle = 1;
    return ESP_OK;
}

void esp_partition_munmap(esp_partition_mmap_handle_t handle)
{
    (void)handle;
}

esp_err_t bootloader_common_get_sha256_of_partition(uint32_t address, uint32_t size, int type, uint8_t *out_sha_256)
{
    /* ESP-IDF: for a data partition type, the sha256 of the flash bytes [address, address + size). */
    trace("H%lu,%lu ", (unsigned long)address, (unsigned long)size);
    if (type != PART_TYPE_DATA || address < fk_part_address || address - fk_part_address + size > fk_flash_bytes) {
        return ESP_ERR_INVALID_ARG;
    }
    yf_sha256_t s;
    yf_sha256_init(&s);
    yf_sha256_update(&s, fk_flash + (address - fk_part_address), size);
    yf_sha256_final(&s, out_sha_256);
    return ESP_OK;
}

/* ---- the rest of the firmware: console and TFLite Micro ------------------------------------------------ */

void yf_console_write_line(const char *line, size_t len)
{
    size_t n = strlen(fk_lines);
    if (n + len < sizeof fk_lines) {
        memcpy(fk_lines + n, line, len);
        fk_lines[n + len] = '\0';
    }
}

size_t yf_console_read(uint8_t *buf, size_t cap, uint32_t timeout_ms)
{
    (void)buf;
    (void)cap;
    (void)timeout_ms;
    return 0;
}

uint32_t yf_audio_task_hwm(void)
{
    return 0;
}

static int8_t s_in[YF_PROTO_PATCH_BYTES], s_out[1024];

int yf_infer_invoke(uint32_t *us)
{
    trace("I ");
    *us = 1000;
    return fk_invoke_rc;
}

void yf_infer_info(yf_infer_info_t *o)
{
    memset(o, 0, sizeof *o);
    o->arena_where = "internal";
    o->out_scale = 1.0f / 256.0f;
    o->out_zp = -128;
}

int8_t *yf_infer_input(void)
{
    return s_in;
}

const int8_t *yf_infer_output(void)
{
    return s_out;
}

void yf_infer_profile(bool on)
{
    (void)on;
}

size_t yf_infer_profile_read(yf_op_time_t *out, size_t max)
{
    (void)out;
    (void)max;
    return 0;
}
