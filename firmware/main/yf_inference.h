/* TFLite Micro interpreter behind a C interface: the generated op resolver, the arena placed in internal
 * RAM when it fits (else PSRAM), invoke timing and an optional per-op profile. Used by one task only. */
#ifndef YF_INFERENCE_H
#define YF_INFERENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    size_t arena_size, arena_used;
    const char *arena_where; /* "internal" | "psram" */
    float in_scale, out_scale;
    int32_t in_zp, out_zp;
    size_t in_bytes, out_bytes;
} yf_infer_info_t;

/* Op types the per-op profile keeps apart (a bench reply lists at most this many). */
#define YF_INFER_MAX_OPS 32

typedef struct {
    const char *op; /* TFLite Micro's tag for the op (its registration name) */
    uint32_t us;    /* summed over the profiled invokes */
} yf_op_time_t;

/* Build the interpreter for a verified model. Returns 0; -1 with err set (model/op/tensor mismatch), or -2
 * when AllocateTensors needed more than YF_ARENA_BYTES: then err names the bytes it needed, and the
 * interpreter runs anyway with a larger PSRAM arena. */
int yf_infer_init(const uint8_t *model, char *err, size_t err_cap);

void yf_infer_info(yf_infer_info_t *out);
int8_t *yf_infer_input(void);
const int8_t *yf_infer_output(void);

/* Run the model on the input tensor; returns 0 or -1, and the invoke time in *us. */
int yf_infer_invoke(uint32_t *us);

/* Per-op profile: start summing (clears), stop, and read the sums per op type (first-seen order). */
void yf_infer_profile(bool on);
size_t yf_infer_profile_read(yf_op_time_t *out, size_t max);

#ifdef __cplusplus
}
#endif
#endif
