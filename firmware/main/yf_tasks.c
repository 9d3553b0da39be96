/* The firmware's tasks. Core 0: capture (yf_audio.c), frontend, console. Core 1: inference alone, so Invoke
 * never delays the audio path: the frontend keeps turning PCM into patches while the model runs, and a
 * patch that finds no free slot is counted and reported, not silently lost.
 * Only FreeRTOS/esp_timer/heap_caps calls here; framing, log-mel, patching, quantization, detection and
 * the protocol are yf_core's. */
#include <string.h>

#include "esp_heap_caps.h"
#include "esp_log.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "yf_app.h"
#include "yf_board_config.h"
#include "yf_console.h"
#include "yf_detector_config.h"
#include "yf_inference.h"
#include "yf_model_params.h"
#include "yf_tables.h"

static const char *TAG = "yf_tasks";

#define YF_STATS_PERIOD_US 5000000LL
#define YF_BENCH_MAX 1000
#define YF_MAX_EVENTS 8

/* Tasks (firmware/README.md "Tasks"). Stack sizes are in bytes: ESP-IDF's StackType_t is uint8_t. The
 * capture task's numbers are in yf_audio.c. */
#define YF_FE_STACK 6144
#define YF_FE_PRIO 8
#define YF_FE_CORE 0
#define YF_INF_STACK 8192
#define YF_INF_PRIO 5
#define YF_INF_CORE 1
#define YF_CON_STACK 6144
#define YF_CON_PRIO 4
#define YF_CON_CORE 0

/* The task watchdog (CONFIG_ESP_TASK_WDT_TIMEOUT_S = 10 in sdkconfig.defaults) watches IDLE1
 * (CONFIG_ESP_TASK_WDT_CHECK_IDLE_TASK_CPU1, y by default): esp_system/task_wdt/task_wdt.c resets it from an
 * idle hook, which runs only when nothing else on core 1 is ready. Inference is alone on core 1 and can be
 * ready for minutes: `bench` runs up to 1000 Invokes of ~0.4 s, and while streaming, whenever Invoke is
 * slower than the 0.48 s hop, the job queue never empties. So after every Invoke the task blocks for
 * YF_IDLE_YIELD_TICKS: vTaskDelay(n > 0) puts it on the delayed list until n tick interrupts have passed
 * (FreeRTOS-Kernel/tasks.c), and IDLE1 runs meanwhile. One tick is 1 ms (CONFIG_FREERTOS_HZ = 1000); the
 * timings reported bracket Invoke alone, so they do not include it. (A yield of 0 ticks would not do: it
 * only lets tasks of equal or higher priority run.) */
#define YF_IDLE_YIELD_TICKS 1

/* Timeouts, in ms. */
#define YF_RING_WAIT_MS 50         /* frontend: wait for audio before checking for a restart */
#define YF_HOST_PCM_WAIT_MS 2000   /* pcm command: room in the ring */
#define YF_HOST_PATCH_WAIT_MS 5000 /* patch command: the previous host patch inferred */
#define YF_RESTART_WAIT_MS 1000    /* source command: the frontend dropped old audio */
#define YF_CONSOLE_READ_MS 100     /* console: longest wait for input before stats are due */
#define YF_RESET_REPLY_MS 100      /* reset command: time for the reply to leave */

yf_app_t g_app;
yf_boot_t g_boot = {.model_where = "none", .fw = "?"};
const char *const yf_task_names[YF_NUM_TASKS] = {"capture", "frontend", "inference", "console"};

static TaskHandle_t s_fe_task, s_inf_task, s_con_task;
static yf_frontend_t s_fe;
static yf_patcher_t s_patcher;
static char *s_out_fe, *s_out_inf, *s_out_con; /* one output line buffer per writing task */
static SemaphoreHandle_t s_misc_lock;             /* err and hello lines, written from any task */
static char s_misc_buf[2048];

static void *alloc_prefer_psram(size_t n)
{
    void *p = heap_caps_malloc(n, MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT);
    return p != NULL ? p : heap_caps_malloc(n, MALLOC_CAP_8BIT);
}

uint32_t yf_task_hwm(size_t i)
{
    TaskHandle_t t[YF_NUM_TASKS] = {NULL, s_fe_task, s_inf_task, s_con_task};
    if (i == 0) {
        return yf_audio_task_hwm();
    }
    /* ESP-IDF's FreeRTOS counts stacks in bytes (StackType_t is uint8_t). */
    return i < YF_NUM_TASKS && t[i] != NULL ? (uint32_t)uxTaskGetStackHighWaterMark(t[i]) : 0;
}

void yf_emit(const char *line, size_t len)
{
    yf_console_write_line(line, len);
}

/* s_misc_lock is NULL until yf_tasks_init() created it, and stays NULL if that failed: app_main reports
 * that failure (and the tasks never start), so it is then the only writer and needs no lock. */
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

static const char *src_name(void)
{
    return atomic_load(&g_app.src) == YF_SRC_HOST ? "host" : "mic";
}

static void fill_hello(yf_hello_t *h)
{
    yf_infer_info_t ii;
    yf_infer_info(&ii);
    memset(h, 0, sizeof *h);
    h->fw = g_boot.fw;
    h->board = YF_BOARD_NAME;
    h->model_sha256 = YF_MODEL_SHA256_HEX;
    h->src = src_name();
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
    fill_hello(&h);
    misc_lock();
    yf_emit(s_misc_buf, yf_proto_hello(s_misc_buf, sizeof s_misc_buf, &h));
    misc_unlock();
}

/* ---- frontend (core 0) ---------------------------------------------------------------------------- */

static void frontend_task(void *arg)
{
    (void)arg;
    static int16_t pcm[YF_FRAME_HOP * 3];
    static int8_t q_tmp[YF_PROTO_PATCH_BYTES];
    float frame[YF_NUM_MEL];
    uint32_t fe_us = 0, fe_frames = 0, patch_seq = 0, last_busy_report = 0;
    for (;;) {
        if (atomic_exchange(&g_app.restart_audio, false)) {
            xSemaphoreTake(g_app.pcm_write_lock, portMAX_DELAY);
            xStreamBufferReset(g_app.pcm_ring); /* we are its only reader and not blocked on it */
            xSemaphoreGive(g_app.pcm_write_lock);
            yf_frontend_reset(&s_fe);
            yf_patch_init(&s_patcher);
            fe_us = fe_frames = patch_seq = 0;
            xSemaphoreGive(g_app.restart_done);
        }
        size_t got = xStreamBufferReceive(g_app.pcm_ring, pcm, sizeof pcm, pdMS_TO_TICKS(YF_RING_WAIT_MS));
        if (got < sizeof(int16_t)) {
            continue;
        }
        const int64_t t_in = esp_timer_get_time();
        const size_t n = got / sizeof(int16_t);
        size_t off = 0;
        while (off < n) {
            int have = 0;
            const int64_t t0 = esp_timer_get_time();
            off += yf_frontend_step(&s_fe, pcm + off, n - off, frame, &have);
            if (!have) {
                break;
            }
            fe_us += (uint32_t)(esp_timer_get_time() - t0);
            fe_frames++;
            if (!yf_patch_push(&s_patcher, frame)) {
                continue;
            }
            const uint32_t patch = s_patcher.patches - 1;
            uint32_t slot;
            const bool have_slot = xQueueReceive(g_app.free_slots, &slot, 0) == pdTRUE;
            int8_t *q = have_slot ? g_app.patches[slot] : q_tmp;
            yf_patch_quantize(&s_patcher, YF_MODEL_INPUT_SCALE, YF_MODEL_INPUT_ZERO_POINT, q);
            if (atomic_load(&g_app.stream_patches)) {
                yf_emit(s_out_fe, yf_proto_data(s_out_fe, YF_OUT_LINE_MAX, "patch", patch, patch_seq++, q,
                                                 YF_PROTO_PATCH_BYTES));
            }
            if (have_slot) {
                yf_job_t j = {.kind = YF_JOB_PATCH, .slot = slot, .patch = patch, .t_ready = t_in,
                              .fe_us = fe_frames ? fe_us / fe_frames : 0};
                xQueueSend(g_app.jobs, &j, portMAX_DELAY);
            } else {
                unsigned skipped = atomic_fetch_add(&g_app.skipped_patches, 1u) + 1u;
                if (patch - last_busy_report >= 10 || skipped == 1) { /* at most one report per ~5 s */
                    last_busy_report = patch;
                    yf_emit_err("E_BUSY", "inference is behind the audio: a patch was not inferred");
                }
            }
            fe_us = fe_frames = 0;
        }
    }
}

/* ---- inference (core 1) --------------------------------------------------------------------------- */

/* Every Invoke goes through here, so none can keep IDLE1 from running (YF_IDLE_YIELD_TICKS). */
static int invoke_then_yield(uint32_t *us)
{
    const int rc = yf_infer_invoke(us);
    vTaskDelay(YF_IDLE_YIELD_TICKS);
    return rc;
}

static void run_detector(uint32_t patch)
{
    yf_infer_info_t ii;
    yf_infer_info(&ii);
    yf_det_event_t ev[YF_MAX_EVENTS];
    xSemaphoreTake(g_app.det_lock, portMAX_DELAY);
    size_t n = yf_detect_push_q(&g_app.det, yf_infer_output(), YF_MODEL_NUM_CLASSES, ii.out_scale, ii.out_zp, patch,
                                ev, YF_MAX_EVENTS);
    xSemaphoreGive(g_app.det_lock);
    for (size_t i = 0; i < n; ++i) {
        const char *label = ev[i].cls < YF_TAB_NUM_LABELS ? yf_tab_labels[ev[i].cls] : "?";
        yf_emit(s_out_inf, yf_proto_det(s_out_inf, YF_OUT_LINE_MAX, ev[i].cls, label, ev[i].score, ev[i].ts_ms,
                                         ev[i].patch));
    }
}

static void do_patch(const yf_job_t *j, uint32_t *scores_seq)
{
    memcpy(yf_infer_input(), g_app.patches[j->slot], YF_PROTO_PATCH_BYTES);
    xQueueSend(g_app.free_slots, &j->slot, 0);
    uint32_t us = 0;
    if (invoke_then_yield(&us) != 0) {
        yf_emit_err("E_INTERNAL", "Invoke failed");
        return;
    }
    atomic_fetch_add(&g_app.inferences, 1u);
    const uint32_t e2e = (uint32_t)(esp_timer_get_time() - j->t_ready);
    run_detector(j->patch);
    yf_emit(s_out_inf, yf_proto_timing(s_out_inf, YF_OUT_LINE_MAX, j->patch, j->fe_us, us, e2e));
    if (atomic_load(&g_app.stream_scores)) {
        yf_emit(s_out_inf, yf_proto_data(s_out_inf, YF_OUT_LINE_MAX, "scores", j->patch, (*scores_seq)++,
                                         yf_infer_output(), YF_MODEL_NUM_CLASSES));
    }
}

static void do_host_patch(const yf_job_t *j)
{
    memcpy(yf_infer_input(), g_app.host_patch, YF_PROTO_PATCH_BYTES);
    xSemaphoreGive(g_app.host_patch_free);
    uint32_t us = 0;
    if (invoke_then_yield(&us) != 0) {
        yf_emit(s_out_inf,
                yf_proto_reply_err(s_out_inf, YF_OUT_LINE_MAX, j->id, "patch", "E_INTERNAL", "Invoke failed"));
        return;
    }
    atomic_fetch_add(&g_app.inferences, 1u);
    yf_jw_t w;
    yf_proto_reply_begin(&w, s_out_inf, YF_OUT_LINE_MAX, j->id, "patch", !j->seq_gap);
    if (j->seq_gap) {
        yf_jw_str(&w, "err", "E_SEQ");
        yf_jw_str(&w, "msg", "patch seq gap");
        yf_jw_uint(&w, "expected", j->expected);
    }
    yf_jw_uint(&w, "seq", j->seq);
    yf_jw_b64(&w, "q", yf_infer_output(), YF_MODEL_NUM_CLASSES);
    yf_jw_uint(&w, "invoke_us", us);
    yf_emit(s_out_inf, yf_jw_end(&w));
}

static void do_bench(const yf_job_t *j)
{
    static uint32_t us[YF_BENCH_MAX];
    yf_infer_profile(true);
    for (uint32_t i = 0; i < j->n; ++i) {
        if (invoke_then_yield(&us[i]) != 0) {
            yf_infer_profile(false);
            yf_emit(s_out_inf, yf_proto_reply_err(s_out_inf, YF_OUT_LINE_MAX, j->id, "bench", "E_INTERNAL",
                                                  "Invoke failed"));
            return;
        }
    }
    yf_infer_profile(false);
    yf_op_time_t ops[32];
    const size_t n_ops = yf_infer_profile_read(ops, 32);
    yf_bench_summary_t s;
    yf_bench_summarize(us, j->n, &s);
    yf_jw_t w;
    yf_proto_reply_begin(&w, s_out_inf, YF_OUT_LINE_MAX, j->id, "bench", true);
    yf_jw_uint(&w, "n", j->n);
    yf_proto_bench_fields(&w, &s);
    yf_jw_arr(&w, "ops"); /* mean time per invoke of each op type, summed over its layers */
    for (size_t i = 0; i < n_ops; ++i) {
        yf_jw_obj(&w, NULL);
        yf_jw_str(&w, "op", ops[i].op);
        yf_jw_uint(&w, "us", ops[i].us / j->n);
        yf_jw_close(&w);
    }
    yf_jw_close(&w);
    yf_emit(s_out_inf, yf_jw_end(&w));
}

static void inference_task(void *arg)
{
    (void)arg;
    uint32_t scores_seq = 0;
    yf_job_t j;
    for (;;) {
        if (xQueueReceive(g_app.jobs, &j, portMAX_DELAY) != pdTRUE) {
            continue;
        }
        if (!g_app.model_ok) {
            if (j.kind == YF_JOB_PATCH) {
                xQueueSend(g_app.free_slots, &j.slot, 0);
            } else {
                if (j.kind == YF_JOB_HOST_PATCH) {
                    xSemaphoreGive(g_app.host_patch_free);
                }
                yf_emit(s_out_inf, yf_proto_reply_err(s_out_inf, YF_OUT_LINE_MAX, j.id,
                                                      j.kind == YF_JOB_BENCH ? "bench" : "patch", "E_MODEL",
                                                      "no model loaded (see the err at boot)"));
            }
            continue;
        }
        switch (j.kind) {
        case YF_JOB_PATCH:
            do_patch(&j, &scores_seq);
            break;
        case YF_JOB_HOST_PATCH:
            do_host_patch(&j);
            break;
        case YF_JOB_BENCH:
            do_bench(&j);
            break;
        }
    }
}

/* ---- console (core 0) ----------------------------------------------------------------------------- */

static yf_line_asm_t *s_lines;
static uint8_t *s_payload;
static int16_t *s_pcm;

static void reply_err(const yf_cmd_t *c, const char *code, const char *msg)
{
    yf_emit(s_out_con, yf_proto_reply_err(s_out_con, YF_OUT_LINE_MAX, c->id, c->name, code, msg));
}

/* Track a host stream's seq; returns true on a gap and sets *expected. */
static bool seq_gap(uint32_t seq, uint32_t *last, bool *seen, uint32_t *expected)
{
    *expected = *seen ? *last + 1u : seq;
    *last = seq;
    *seen = true;
    return seq != *expected;
}

static void cmd_pcm(const yf_cmd_t *c)
{
    if (atomic_load(&g_app.src) != YF_SRC_HOST) {
        reply_err(c, "E_ARG", "source is mic: send {\"cmd\":\"source\",\"src\":\"host\"} first");
        return;
    }
    uint32_t expected;
    const bool gap = seq_gap(c->seq, &g_app.host_pcm_seq, &g_app.host_pcm_seen, &expected);
    const size_t n = yf_pcm_from_le(c->data, c->data_len, s_pcm);
    xSemaphoreTake(g_app.pcm_write_lock, portMAX_DELAY);
    const size_t sent =
        xStreamBufferSend(g_app.pcm_ring, s_pcm, n * sizeof(int16_t), pdMS_TO_TICKS(YF_HOST_PCM_WAIT_MS));
    xSemaphoreGive(g_app.pcm_write_lock);
    yf_jw_t w;
    yf_proto_reply_begin(&w, s_out_con, YF_OUT_LINE_MAX, c->id, c->name, !gap);
    if (gap) {
        yf_jw_str(&w, "err", "E_SEQ");
        yf_jw_str(&w, "msg", "pcm seq gap");
        yf_jw_uint(&w, "expected", expected);
    }
    yf_jw_uint(&w, "seq", c->seq);
    yf_jw_uint(&w, "accepted", sent / sizeof(int16_t));
    yf_emit(s_out_con, yf_jw_end(&w));
}

static void cmd_patch(const yf_cmd_t *c)
{
    if (c->data_len != YF_PROTO_PATCH_BYTES) {
        reply_err(c, "E_ARG", "a patch is 6144 int8 values (96 x 64)");
        return;
    }
    if (xSemaphoreTake(g_app.host_patch_free, pdMS_TO_TICKS(YF_HOST_PATCH_WAIT_MS)) != pdTRUE) {
        reply_err(c, "E_BUSY", "the previous patch is still being inferred");
        return;
    }
    memcpy(g_app.host_patch, c->data, YF_PROTO_PATCH_BYTES);
    yf_job_t j = {.kind = YF_JOB_HOST_PATCH, .id = c->id, .seq = c->seq};
    j.seq_gap = seq_gap(c->seq, &g_app.host_patch_seq, &g_app.host_patch_seen, &j.expected);
    xQueueSend(g_app.jobs, &j, portMAX_DELAY);
}

static void cmd_detector(const yf_cmd_t *c)
{
    static yf_detect_t next;
    xSemaphoreTake(g_app.det_lock, portMAX_DELAY);
    yf_detect_config_t cfg = g_app.det.cfg;
    if (c->det_present & YF_DET_HAS_CLASSES) {
        cfg.n_classes = c->n_classes;
        memcpy(cfg.classes, c->classes, c->n_classes * sizeof c->classes[0]);
    }
    if (c->det_present & YF_DET_HAS_THRESHOLD) cfg.threshold = c->threshold;
    if (c->det_present & YF_DET_HAS_WINDOW) cfg.window = c->window;
    if (c->det_present & YF_DET_HAS_MIN_COUNT) cfg.min_count = c->min_count;
    if (c->det_present & YF_DET_HAS_REFRACTORY) cfg.refractory_ms = c->refractory_ms;
    bool ok = cfg.n_classes <= YF_DETECT_MAX_CLASSES;
    for (uint32_t i = 0; ok && i < cfg.n_classes; ++i) {
        ok = cfg.classes[i] < YF_MODEL_NUM_CLASSES;
    }
    ok = ok && yf_detect_init(&next, &cfg) == 0;
    if (ok) {
        g_app.det = next;
    }
    xSemaphoreGive(g_app.det_lock);
    if (!ok) {
        reply_err(c, "E_ARG", "detector setting out of range");
        return;
    }
    yf_jw_t w;
    yf_proto_reply_begin(&w, s_out_con, YF_OUT_LINE_MAX, c->id, c->name, true);
    yf_jw_arr(&w, "classes");
    for (uint32_t i = 0; i < cfg.n_classes; ++i) {
        yf_jw_uint(&w, NULL, cfg.classes[i]);
    }
    yf_jw_close(&w);
    yf_jw_num(&w, "threshold", cfg.threshold);
    yf_jw_uint(&w, "window", cfg.window);
    yf_jw_uint(&w, "min_count", cfg.min_count);
    yf_jw_uint(&w, "refractory_ms", cfg.refractory_ms);
    yf_emit(s_out_con, yf_jw_end(&w));
}

static void handle_command(const char *json, size_t len)
{
    yf_cmd_t c;
    switch (yf_proto_parse_cmd(json, len, &c, s_payload, YF_PROTO_PAYLOAD_MAX)) {
    case YF_PARSE_BAD:
        yf_line_bad(s_lines);
        return;
    case YF_PARSE_UNKNOWN_CMD:
        reply_err(&c, "E_UNKNOWN_CMD", c.err_msg);
        return;
    case YF_PARSE_ARG:
        reply_err(&c, "E_ARG", c.err_msg);
        return;
    case YF_PARSE_OK:
        break;
    }
    yf_jw_t w;
    switch (c.kind) {
    case YF_CMD_PING:
        yf_proto_reply_begin(&w, s_out_con, YF_OUT_LINE_MAX, c.id, c.name, true);
        yf_emit(s_out_con, yf_jw_end(&w));
        break;
    case YF_CMD_INFO: {
        yf_hello_t h;
        fill_hello(&h);
        yf_proto_reply_begin(&w, s_out_con, YF_OUT_LINE_MAX, c.id, c.name, true);
        yf_proto_hello_fields(&w, &h);
        yf_emit(s_out_con, yf_jw_end(&w));
        break;
    }
    case YF_CMD_SOURCE:
        atomic_store(&g_app.src, (int)c.src);
        atomic_store(&g_app.restart_audio, true); /* patches count from 0 again */
        /* Reply only once the frontend has dropped the old audio, so the host's next pcm is not dropped. */
        xSemaphoreTake(g_app.restart_done, pdMS_TO_TICKS(YF_RESTART_WAIT_MS));
        g_app.host_pcm_seen = g_app.host_patch_seen = false;
        xSemaphoreTake(g_app.det_lock, portMAX_DELAY);
        yf_detect_reset(&g_app.det);
        xSemaphoreGive(g_app.det_lock);
        yf_proto_reply_begin(&w, s_out_con, YF_OUT_LINE_MAX, c.id, c.name, true);
        yf_jw_str(&w, "src", src_name());
        yf_emit(s_out_con, yf_jw_end(&w));
        break;
    case YF_CMD_PCM:
        cmd_pcm(&c);
        break;
    case YF_CMD_PATCH:
        cmd_patch(&c);
        break;
    case YF_CMD_STREAM:
        atomic_store(&g_app.stream_scores, c.scores);
        atomic_store(&g_app.stream_patches, c.patches);
        yf_proto_reply_begin(&w, s_out_con, YF_OUT_LINE_MAX, c.id, c.name, true);
        yf_jw_bool(&w, "scores", c.scores);
        yf_jw_bool(&w, "patches", c.patches);
        yf_emit(s_out_con, yf_jw_end(&w));
        break;
    case YF_CMD_DETECTOR:
        cmd_detector(&c);
        break;
    case YF_CMD_BENCH: {
        const uint32_t n = c.has_n ? c.n : 10;
        if (n == 0 || n > YF_BENCH_MAX) {
            reply_err(&c, "E_ARG", "bench n must be 1..1000");
            break;
        }
        yf_job_t j = {.kind = YF_JOB_BENCH, .id = c.id, .n = n};
        xQueueSend(g_app.jobs, &j, portMAX_DELAY);
        break;
    }
    case YF_CMD_RESET:
        yf_proto_reply_begin(&w, s_out_con, YF_OUT_LINE_MAX, c.id, c.name, true);
        yf_emit(s_out_con, yf_jw_end(&w));
        vTaskDelay(pdMS_TO_TICKS(YF_RESET_REPLY_MS)); /* let the reply leave */
        esp_restart();
        break;
    case YF_CMD_NONE:
        break;
    }
}

static void emit_stats(void)
{
    yf_infer_info_t ii;
    yf_infer_info(&ii);
    uint32_t hwm[YF_NUM_TASKS];
    for (size_t i = 0; i < YF_NUM_TASKS; ++i) {
        hwm[i] = yf_task_hwm(i);
    }
    const yf_stats_t s = {
        .uptime_ms = (uint32_t)(esp_timer_get_time() / 1000),
        .inferences = atomic_load(&g_app.inferences),
        .dropped_samples = atomic_load(&g_app.dropped_samples),
        .bad_lines = s_lines->bad_lines,
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
    };
    yf_emit(s_out_con, yf_proto_stats(s_out_con, YF_OUT_LINE_MAX, &s));
}

static void console_task(void *arg)
{
    (void)arg;
    static uint8_t rx[1024];
    int64_t next_stats = esp_timer_get_time() + YF_STATS_PERIOD_US;
    for (;;) {
        const size_t n = yf_console_read(rx, sizeof rx, YF_CONSOLE_READ_MS);
        size_t off = 0;
        while (off < n) {
            yf_line_t line;
            off += yf_line_feed(s_lines, rx + off, n - off, &line);
            if (line.kind == YF_LINE_PROTO) {
                handle_command(line.json, line.json_len);
            }
        }
        if (esp_timer_get_time() >= next_stats) {
            next_stats += YF_STATS_PERIOD_US;
            emit_stats();
        }
    }
}

/* ---- start ------------------------------------------------------------------------------------------ */

int yf_tasks_init(void)
{
    s_misc_lock = xSemaphoreCreateMutex();
    g_app.pcm_write_lock = xSemaphoreCreateMutex();
    g_app.det_lock = xSemaphoreCreateMutex();
    g_app.host_patch_free = xSemaphoreCreateBinary();
    g_app.restart_done = xSemaphoreCreateBinary();
    g_app.pcm_ring = xStreamBufferCreate(YF_PCM_RING_BYTES, sizeof(int16_t));
    g_app.jobs = xQueueCreate(YF_PATCH_SLOTS + 2, sizeof(yf_job_t));
    g_app.free_slots = xQueueCreate(YF_PATCH_SLOTS, sizeof(uint32_t));
    s_out_fe = alloc_prefer_psram(YF_OUT_LINE_MAX);
    s_out_inf = alloc_prefer_psram(YF_OUT_LINE_MAX);
    s_out_con = alloc_prefer_psram(YF_OUT_LINE_MAX);
    s_lines = alloc_prefer_psram(sizeof *s_lines);
    s_payload = alloc_prefer_psram(YF_PROTO_PAYLOAD_MAX);
    s_pcm = alloc_prefer_psram(YF_PROTO_MAX_PCM_SAMPLES * sizeof(int16_t));
    if (!s_misc_lock || !g_app.pcm_write_lock || !g_app.det_lock || !g_app.host_patch_free || !g_app.restart_done ||
        !g_app.pcm_ring || !g_app.jobs || !g_app.free_slots || !s_out_fe || !s_out_inf || !s_out_con || !s_lines ||
        !s_payload || !s_pcm) {
        return -1;
    }
    xSemaphoreGive(g_app.host_patch_free);
    for (uint32_t i = 0; i < YF_PATCH_SLOTS; ++i) {
        xQueueSend(g_app.free_slots, &i, 0);
    }
    yf_line_init(s_lines);
    atomic_store(&g_app.src, (int)YF_SRC_MIC);

    const yf_frontend_config_t fe_cfg = {
        .mel_first = yf_tab_mel_first,
        .mel_len = yf_tab_mel_len,
        .mel_weights = yf_tab_mel_weights,
        .window = yf_tab_hann,
        .log_offset = YF_GEN_LOG_OFFSET,
    };
    if (yf_frontend_init(&s_fe, &fe_cfg) != 0) {
        return -1;
    }
    yf_patch_init(&s_patcher);

    static const uint16_t classes[] = YF_DET_CLASSES;
    yf_detect_config_t det = {
        .n_classes = YF_DET_NUM_CLASSES,
        .threshold = YF_DET_THRESHOLD,
        .window = YF_DET_WINDOW,
        .min_count = YF_DET_MIN_COUNT,
        .refractory_ms = YF_DET_REFRACTORY_MS,
    };
    memcpy(det.classes, classes, YF_DET_NUM_CLASSES * sizeof classes[0]);
    return yf_detect_init(&g_app.det, &det);
}

void yf_tasks_start(void)
{
    xTaskCreatePinnedToCore(frontend_task, "yf_frontend", YF_FE_STACK, NULL, YF_FE_PRIO, &s_fe_task, YF_FE_CORE);
    xTaskCreatePinnedToCore(inference_task, "yf_inference", YF_INF_STACK, NULL, YF_INF_PRIO, &s_inf_task,
                            YF_INF_CORE);
    xTaskCreatePinnedToCore(console_task, "yf_console", YF_CON_STACK, NULL, YF_CON_PRIO, &s_con_task, YF_CON_CORE);
}
