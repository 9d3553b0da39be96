/* The 96x64 patch ring: see yf_patch.h. */
#include "yf_patch.h"

#include <string.h>

#include "yf_quant.h"

void yf_patch_init(yf_patcher_t *p)
{
    memset(p, 0, sizeof(*p));
}

int yf_patch_push(yf_patcher_t *p, const float frame[YF_NUM_MEL])
{
    uint32_t slot;
    if (p->count < YF_PATCH_FRAMES) {
        slot = (p->head + p->count) % YF_PATCH_FRAMES;
        p->count++;
    } else {
        /* Full: the oldest frame has been part of its last patch (each frame is in two patches). */
        slot = p->head;
        p->head = (p->head + 1) % YF_PATCH_FRAMES;
    }
    memcpy(p->ring[slot], frame, sizeof(p->ring[slot]));
    p->frames++;
    if (p->frames >= YF_PATCH_FRAMES && (p->frames - YF_PATCH_FRAMES) % YF_PATCH_HOP == 0) {
        p->patches++;
        return 1;
    }
    return 0;
}

const float *yf_patch_row(const yf_patcher_t *p, unsigned i)
{
    return p->ring[(p->head + i) % YF_PATCH_FRAMES];
}

void yf_patch_copy(const yf_patcher_t *p, float *out)
{
    for (unsigned i = 0; i < YF_PATCH_FRAMES; i++) {
        memcpy(out + (size_t)i * YF_NUM_MEL, yf_patch_row(p, i), YF_NUM_MEL * sizeof(float));
    }
}

void yf_patch_quantize(const yf_patcher_t *p, float scale, int32_t zero_point, int8_t *out)
{
    for (unsigned i = 0; i < YF_PATCH_FRAMES; i++) {
        yf_quantize(yf_patch_row(p, i), YF_NUM_MEL, scale, zero_point, out + (size_t)i * YF_NUM_MEL);
    }
}
