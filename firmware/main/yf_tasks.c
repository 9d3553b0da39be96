/* The firmware's audio tasks. Core 0: capture (yf_audio.c), frontend, console (yf_commands.c). Core 1:
 * inference alone, so Invoke never delays the audio path: the frontend keeps turning PCM into patches while
 * the model runs, and a patch that finds no free slot is counted (stats' patches_skipped) and reported, not
 * silently lost; the microphone's audio is never dropped for it.
 * Only FreeRTOS/esp_timer calls here; framing, log-mel, patching, quantization, detection and the protocol
 * are yf_core's. */
#include <string.h>

#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "yf_app.h"
#include "yf_detector_config.h"
#include "yf_inference.h"
#include "yf_model_params.h"
#include "yf_tables.h"

/* The task watchdog (CONFIG_ESP_TASK_WDT_TIMEOUT_S = 10 in sdkconfig.defaults) watches IDLE1
 * (CONFIG_ESP_TASK_WDT_CHECK_IDLE_TASK_CPU1, y by default): esp_system/task_wdt/task_wdt.c resets it from an
 * idle hook, which runs only when nothing else on core 1 is ready. Inference is alone on core 1 and can be
 * ready for minutes: `bench` runs up to YF_PROTO_BENCH_MAX Invokes of ~0.4 s, and while streaming, whenever
 * Invoke is slower than the 0.48 s hop, the job queue never empties. So after every Invoke the task blocks for
 * YF_IDLE_YIELD_TICKS: vTaskDelay(n > 0) puts it on the delayed list until n tick interrupts have passed
 * (FreeRTOS-Kernel/tasks.c), and IDLE1 runs meanwhile. One tick is 1 ms (CONFIG_FREERTOS_HZ = 1000); the
 * timings reported bracket Invoke alone, so they do not include it. (A yield of 0 ticks would not do: it
 * only lets tasks of equal or higher priority run.) */
#define YF_IDLE_YIELD_TICKS 1

static TaskHandle_t s_fe_task, s_inf_task, s_con_task;
static yf_frontend_t s_fe;
static yf_patcher_t s_patcher;
static char *s_out_fe, *s_out_inf; /* one output line buffer per writing task */

uint32_t yf_task_hwm(size_t i)
{
    TaskHandle_t t[YF_NUM_TASKS] = {NULL, s_fe_task, s_inf_task, s_con_task};
    if (i == 0) {
        return yf_audio_task_hwm();
    }
    /* ESP-IDF's FreeRTOS counts stacks in bytes (StackType_t is uint8_t). */
    return i < YF_NUM_TASKS && t[i] != NULL ? (uint32_t)uxTaskGetStackHighWaterMark(t[i]) : 0;
}

void yf_tasks_submit(const yf_job_t *j)
{
    xQueueSend(g_app.jobs, j, portMAX_DELAY);
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
                if (patch - last_busy_report >= YF_BUSY_REPORT_PATCHES || skipped == 1) {
                    last_busy_report = patch;
                    yf_emit_err(YF_E_BUSY, "inference is behind the audio: a patch was not inferred "
                                           "(stats: patches_skipped)");
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
        yf_emit_err(YF_E_INTERNAL, "Invoke failed");
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
                yf_proto_reply_err(s_out_inf, YF_OUT_LINE_MAX, j->id, "patch", YF_E_INTERNAL, "Invoke failed"));
        return;
    }
    atomic_fetch_add(&g_app.inferences, 1u);
    const yf_patch_req_t r = {.id = j->id, .seq = j->seq, .seq_gap = j->seq_gap, .expected = j->expected};
    yf_emit(s_out_inf, yf_device_patch_reply(s_out_inf, YF_OUT_LINE_MAX, &r, yf_infer_output(), YF_MODEL_NUM_CLASSES, us));
}

static void do_bench(const yf_job_t *j)
{
    static uint32_t us[YF_PROTO_BENCH_MAX];
    yf_infer_profile(true);
    for (uint32_t i = 0; i < j->n; ++i) {
        if (invoke_then_yield(&us[i]) != 0) {
            yf_infer_profile(false);
            yf_emit(s_out_inf, yf_proto_reply_err(s_out_inf, YF_OUT_LINE_MAX, j->id, "bench", YF_E_INTERNAL,
                                                  "Invoke failed"));
            return;
        }
    }
    yf_infer_profile(false);
    yf_op_time_t prof[YF_INFER_MAX_OPS];
    yf_bench_op_t ops[YF_INFER_MAX_OPS];
    const size_t n_ops = yf_infer_profile_read(prof, YF_INFER_MAX_OPS);
    for (size_t i = 0; i < n_ops; ++i) { /* the interpreter's C++ side does not see yf_core's types */
        ops[i].op = prof[i].op;
        ops[i].us = prof[i].us;
    }
    yf_jw_t w;
    yf_device_bench_reply(&w, s_out_inf, YF_OUT_LINE_MAX, j->id, us, j->n, ops, n_ops);
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
        if (!g_app.model_ok) { /* only the frontend's patches get here: the console refuses host jobs */
            if (j.kind == YF_JOB_PATCH) {
                xQueueSend(g_app.free_slots, &j.slot, 0);
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

/* ---- start ------------------------------------------------------------------------------------------ */

int yf_tasks_init(void)
{
    if (yf_app_init() != 0 || yf_commands_init() != 0) {
        return -1;
    }
    g_app.pcm_write_lock = xSemaphoreCreateMutex();
    g_app.det_lock = xSemaphoreCreateMutex();
    g_app.host_patch_free = xSemaphoreCreateBinary();
    g_app.restart_done = xSemaphoreCreateBinary();
    g_app.pcm_ring = xStreamBufferCreate(YF_PCM_RING_BYTES, sizeof(int16_t));
    g_app.jobs = xQueueCreate(YF_PATCH_SLOTS + 2, sizeof(yf_job_t));
    g_app.free_slots = xQueueCreate(YF_PATCH_SLOTS, sizeof(uint32_t));
    s_out_fe = yf_alloc_prefer_psram(YF_OUT_LINE_MAX);
    s_out_inf = yf_alloc_prefer_psram(YF_OUT_LINE_MAX);
    if (!g_app.pcm_write_lock || !g_app.det_lock || !g_app.host_patch_free || !g_app.restart_done ||
        !g_app.pcm_ring || !g_app.jobs || !g_app.free_slots || !s_out_fe || !s_out_inf) {
        return -1;
    }
    xSemaphoreGive(g_app.host_patch_free);
    for (uint32_t i = 0; i < YF_PATCH_SLOTS; ++i) {
        xQueueSend(g_app.free_slots, &i, 0);
    }
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
    xTaskCreatePinnedToCore(frontend_task, "yf_frontend", YF_TASK_FRONTEND_STACK, NULL, YF_TASK_FRONTEND_PRIO,
                            &s_fe_task, YF_TASK_FRONTEND_CORE);
    xTaskCreatePinnedToCore(inference_task, "yf_inference", YF_TASK_INFERENCE_STACK, NULL, YF_TASK_INFERENCE_PRIO,
                            &s_inf_task, YF_TASK_INFERENCE_CORE);
    yf_commands_start(&s_con_task);
}
