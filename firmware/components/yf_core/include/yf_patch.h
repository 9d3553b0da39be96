/* yf_patch: the 96x64 patch ring. A patch is ready when 96 frames have arrived and then after every
 * 48 more; consecutive patches overlap by 48 frames and no frame is ever dropped. The ready patch stays
 * readable until the next push, so the caller copies or quantizes it before pushing again. */
#ifndef YF_PATCH_H
#define YF_PATCH_H

#include <stddef.h>
#include <stdint.h>

#include "yf_frontend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define YF_PATCH_FRAMES 96
#define YF_PATCH_HOP 48
#define YF_PATCH_VALUES (YF_PATCH_FRAMES * YF_NUM_MEL)

typedef struct {
    float ring[YF_PATCH_FRAMES][YF_NUM_MEL];
    uint32_t head;    /* ring index of the oldest frame */
    uint32_t count;   /* frames held, at most YF_PATCH_FRAMES */
    uint32_t frames;  /* frames pushed since init/reset */
    uint32_t patches; /* patches emitted since init/reset; the ready one is number patches - 1 */
} yf_patcher_t;

/* Empty the ring and zero the counters. */
void yf_patch_init(yf_patcher_t *p);

/* Append one frame; returns 1 when a new patch is ready (frames 96, 144, 192, ...), else 0. */
int yf_patch_push(yf_patcher_t *p, const float frame[YF_NUM_MEL]);

/* Row i (0 = oldest) of the current patch; valid only while count == YF_PATCH_FRAMES. */
const float *yf_patch_row(const yf_patcher_t *p, unsigned i);

/* Copy the current patch, oldest frame first, into out[96 * 64]. */
void yf_patch_copy(const yf_patcher_t *p, float *out);

/* Quantize the current patch straight from the ring into out[96 * 64] (model input order). */
void yf_patch_quantize(const yf_patcher_t *p, float scale, int32_t zero_point, int8_t *out);

#ifdef __cplusplus
}
#endif
#endif
