/* Workload for scripts/bench_core.py: runs yf_core on synthetic audio for a given number of 10 ms frames.
 * Modes: "frontend" (framing, window, FFT, mel, log), "pipeline" (plus patch ring, int8 quantization and
 * the detector every 48 frames), "proto" (one pcm command parsed and one det event written per frame).
 * The mel tables come from build/bench/mel_tables.h, written by the script from yamflash.frontend. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mel_tables.h"
#include "yf_core.h"

static yf_frontend_t fe;
static yf_patcher_t patcher;
static yf_detect_t det;
static int8_t qpatch[YF_PATCH_VALUES];

int main(int argc, char **argv)
{
    long frames = argc > 1 ? atol(argv[1]) : 100;
    const char *mode = argc > 2 ? argv[2] : "pipeline";
    yf_frontend_config_t cfg = {MEL_FIRST, MEL_LEN, MEL_WEIGHTS, NULL, YF_LOG_OFFSET};
    if (yf_frontend_init(&fe, &cfg) != 0) {
        return 2;
    }
    yf_patch_init(&patcher);
    yf_detect_config_t dc = {{0, 494, 396}, 3, 0.5f, 3, 2, 1000};
    yf_detect_init(&det, &dc);
    static int16_t pcm[YF_FRAME_HOP];
    static float out[YF_NUM_MEL];
    static int8_t scores[521];
    static char line[YF_PROTO_MAX_LINE + 1];
    static yf_cmd_t cmd;
    static uint8_t payload[YF_PROTO_PAYLOAD_MAX];
    yf_det_event_t ev[4];
    uint32_t seed = 1, n_patches = 0;
    double checksum = 0.0;
    long produced = -(YF_FRAME_LEN - YF_FRAME_HOP) / YF_FRAME_HOP; /* the first frame needs 400 samples */
    for (long f = 0; produced < frames; f++) {
        for (int i = 0; i < YF_FRAME_HOP; i++) { /* a tone plus noise: speech-like dynamic range */
            seed = seed * 1664525u + 1013904223u;
            pcm[i] = (int16_t)(3000.0 * sin(0.07 * (double)(f * YF_FRAME_HOP + i)) + (double)((int32_t)(seed >> 20) - 2048));
        }
        if (strcmp(mode, "proto") == 0) {
            yf_jw_t w;
            yf_jw_begin(&w, line, sizeof(line), "cmd");
            yf_jw_uint(&w, "id", (uint64_t)f);
            yf_jw_str(&w, "cmd", "pcm");
            yf_jw_uint(&w, "seq", (uint64_t)f);
            yf_jw_b64(&w, "d", pcm, sizeof(pcm));
            size_t n = yf_jw_end(&w);
            if (yf_proto_parse_cmd(line + 4, n - 5, &cmd, payload, sizeof(payload)) != YF_PARSE_OK) {
                return 3;
            }
            checksum += (double)yf_proto_det(line, sizeof(line), 494, "Whistle", 0.75f, 1455, (uint32_t)f);
            produced++;
            continue;
        }
        size_t pos = 0;
        while (pos < YF_FRAME_HOP) {
            int got = 0;
            pos += yf_frontend_step(&fe, pcm + pos, YF_FRAME_HOP - pos, out, &got);
            if (!got) {
                continue;
            }
            produced++;
            checksum += out[7];
            if (strcmp(mode, "pipeline") == 0 && yf_patch_push(&patcher, out)) {
                yf_patch_quantize(&patcher, 0.0465f, 32, qpatch);
                for (int k = 0; k < 521; k++) {
                    scores[k] = qpatch[k * 11 % YF_PATCH_VALUES]; /* stand-in for the model's output */
                }
                checksum += (double)yf_detect_push_q(&det, scores, 521, 1.0f / 256.0f, -128, n_patches++, ev, 4);
            }
        }
    }
    printf("%ld frames, %u patches, checksum %.6g\n", produced, n_patches, checksum);
    return 0;
}
