/* app_main: console, model, interpreter, tasks, hello. Boot failures are reported over the protocol
 * (`err` with E_MODEL/E_ALLOC/E_INTERNAL) and the console keeps serving, so a host can see what is wrong. */
#include <stdio.h>
#include <string.h>

#include "esp_app_desc.h"
#include "esp_log.h"
#include "yf_app.h"
#include "yf_console.h"
#include "yf_inference.h"
#include "yf_model_params.h"
#include "yf_model_store.h"

/* The generated tables and constants must describe the frontend yf_core implements. */
_Static_assert(YF_GEN_SAMPLE_RATE == YF_SAMPLE_RATE, "sample rate");
_Static_assert(YF_GEN_FRAME_LEN == YF_FRAME_LEN, "frame length");
_Static_assert(YF_GEN_FRAME_HOP == YF_FRAME_HOP, "frame hop");
_Static_assert(YF_GEN_FFT_LEN == YF_FFT_LEN, "FFT length");
_Static_assert(YF_GEN_NUM_MEL == YF_NUM_MEL, "mel bands");
_Static_assert(YF_GEN_PATCH_FRAMES == YF_PATCH_FRAMES, "patch frames");
_Static_assert(YF_GEN_PATCH_HOP_FRAMES == YF_PATCH_HOP, "patch hop");
_Static_assert(YF_MODEL_INPUT_DIM1 * YF_MODEL_INPUT_DIM2 == YF_PROTO_PATCH_BYTES, "patch size");

static const char *TAG = "yamflash";

/* When one Invoke takes longer than the patch hop the chip cannot keep up: the frontend keeps all microphone
 * audio but some patches are not inferred (stats' patches_skipped). Say so at boot, from a measured Invoke
 * (the second of two on a silent patch, so one-time costs do not count), with what the user can do. */
static void warn_if_slower_than_hop(void)
{
    static char msg[200];
    uint32_t us = 0;
    memset(yf_infer_input(), 0, YF_PROTO_PATCH_BYTES);
    if (yf_infer_invoke(&us) != 0 || yf_infer_invoke(&us) != 0) {
        return; /* the inference task reports Invoke failures as they happen */
    }
    const uint32_t hop_us = YF_DETECT_PATCH_HOP_MS * 1000u;
    if (us <= hop_us) {
        return;
    }
    snprintf(msg, sizeof msg,
             "Invoke takes %u ms, longer than the %u ms hop: about %u%% of patches will not be inferred "
             "(stats: patches_skipped); use the compact model or a longer hop",
             (unsigned)(us / 1000u), (unsigned)(hop_us / 1000u), (unsigned)(100u - 100ull * hop_us / us));
    yf_emit_err(YF_E_BUSY, msg);
}

void app_main(void)
{
    if (yf_console_init() != ESP_OK) {
        ESP_LOGE(TAG, "console driver install failed; commands will not be read");
    }
    g_boot.fw = esp_app_get_description()->version;
    if (yf_tasks_init() != 0) {
        yf_emit_err(YF_E_ALLOC, "cannot allocate the task queues and buffers");
        return;
    }

    static char err[256];
    yf_model_t model;
    if (yf_model_load(&model, err, sizeof err) != 0) {
        yf_emit_err(YF_E_MODEL, err);
    } else {
        g_boot.model_where = model.where;
        g_app.model = model.data;
        g_app.model_bytes = model.bytes;
        const int rc = yf_infer_init(model.data, err, sizeof err);
        if (rc == -2) {
            yf_emit_err(YF_E_ALLOC, err); /* runs with a larger PSRAM arena; hello says where */
        } else if (rc != 0) {
            yf_emit_err(YF_E_MODEL, err);
        }
        g_app.model_ok = rc == 0 || rc == -2;
        if (g_app.model_ok) {
            warn_if_slower_than_hop();
        }
    }

    yf_tasks_start();
    if (yf_audio_start() != 0) {
        yf_emit_err(YF_E_INTERNAL, "microphone init failed; host-injected audio still works");
    }
    yf_emit_hello();
}
