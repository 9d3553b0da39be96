/* The glue's shared state and its output: g_app/g_boot, the hello every task may send, and err/hello lines
 * written from any task under one lock. */
#include <string.h>

#include "esp_heap_caps.h"
#include "esp_log.h"
#include "yf_app.h"
#include "yf_board_config.h"
#include "yf_console.h"
#include "yf_inference.h"
#include "yf_model_params.h"

static const char *TAG = "yf_app";

yf_app_t g_app;
yf_boot_t g_boot = {.model_where = "none", .fw = "?"};
const char *const yf_task_names[YF_NUM_TASKS] = {"capture", "frontend", "inference", "console"};

static SemaphoreHandle_t s_misc_lock; /* err and hello lines, written from any task */
static char s_misc_buf[YF_MISC_LINE_MAX];

int yf_app_init(void)
{
    s_misc_lock = xSemaphoreCreateMutex();
    return s_misc_lock != NULL ? 0 : -1;
}

void *yf_alloc_prefer_psram(size_t n)
{
    void *p = heap_caps_malloc(n, MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT);
    return p != NULL ? p : heap_caps_malloc(n, MALLOC_CAP_8BIT);
}

void yf_emit(const char *line, size_t len)
{
    yf_console_write_line(line, len);
}

/* s_misc_lock is NULL until yf_app_init() created it, and stays NULL if that failed: app_main reports that
 * failure (and the tasks never start), so it is then the only writer and needs no lock. */
static void misc_lock(void)
{
    if (s_misc_lock != NULL) {
        xSemaphoreTake(s_misc_lock, portMAX_DELAY);
    }
}

static void misc_unlock(void)
{
    if (s_misc_lock != NULL) {
        xSemaphoreGive(s_misc_lock);
    }
}

void yf_emit_err(const char *code, const char *msg)
{
    ESP_LOGW(TAG, "%s: %s", code, msg);
    misc_lock();
    yf_emit(s_misc_buf, yf_proto_err(s_misc_buf, sizeof s_misc_buf, code, msg));
    misc_unlock();
}

const char *yf_src_name(void)
{
    return atomic_load(&g_app.src) == YF_SRC_HOST ? "host" : "mic";
}

void yf_fill_hello(yf_hello_t *h)
{
    yf_infer_info_t ii;
    yf_infer_info(&ii);
    memset(h, 0, sizeof *h);
    h->fw = g_boot.fw;
    h->board = YF_BOARD_NAME;
    h->model_sha256 = YF_MODEL_SHA256_HEX;
    h->src = yf_src_name();
    h->clock = "chip";
    h->model_bytes = g_app.model_ok ? (uint32_t)g_app.model_bytes : 0;
    h->labels = YF_MODEL_NUM_CLASSES;
    h->in_scale = g_app.model_ok ? ii.in_scale : YF_MODEL_INPUT_SCALE;
    h->in_zp = g_app.model_ok ? ii.in_zp : YF_MODEL_INPUT_ZERO_POINT;
    h->out_scale = g_app.model_ok ? ii.out_scale : YF_MODEL_OUTPUT_SCALE;
    h->out_zp = g_app.model_ok ? ii.out_zp : YF_MODEL_OUTPUT_ZERO_POINT;
    h->arena_size = (uint32_t)ii.arena_size;
    h->arena_used = (uint32_t)ii.arena_used;
    h->arena_where = ii.arena_where;
    h->heap_free = (uint32_t)heap_caps_get_free_size(MALLOC_CAP_INTERNAL);
    h->psram_free = (uint32_t)heap_caps_get_free_size(MALLOC_CAP_SPIRAM);
}

void yf_emit_hello(void)
{
    yf_hello_t h;
    yf_fill_hello(&h);
    misc_lock();
    yf_emit(s_misc_buf, yf_proto_hello(s_misc_buf, sizeof s_misc_buf, &h));
    misc_unlock();
}
