/* yf_detect: turns per-patch class scores into detection events, as ESPHome's micro_wake_word does:
 * per watched class, the mean of the last `window` scores (no event before `window` patches were seen)
 * is compared with `threshold` (>=); `min_count` consecutive patches at or above it fire one event;
 * then the class stays quiet for `refractory_ms` of audio time and its count restarts from zero. */
#ifndef YF_DETECT_H
#define YF_DETECT_H

#include <stddef.h>
#include <stdint.h>

#include "yf_proto_spec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits and defaults are the protocol's (generated from host/yamflash/board/protocol_spec.json), so the
 * detector command, `yamflash gen` and the virtual board check the same ranges. */
#define YF_DETECT_MAX_CLASSES YF_PROTO_MAX_CLASSES
#define YF_DETECT_MAX_WINDOW YF_PROTO_MAX_WINDOW
#define YF_DETECT_PATCH_HOP_MS 480u /* audio time between patch starts (48 frames x 10 ms) */
#define YF_DETECT_PATCH_MS 975u     /* audio time covered by one patch */

typedef struct {
    uint16_t classes[YF_DETECT_MAX_CLASSES]; /* class indices to watch */
    uint32_t n_classes;                      /* 0..YF_DETECT_MAX_CLASSES (0: detector idle) */
    float threshold;                         /* on the smoothed score, 0..1 */
    uint32_t window;                         /* patches averaged, 1..YF_DETECT_MAX_WINDOW */
    uint32_t min_count;                      /* consecutive patches at or above threshold */
    uint32_t refractory_ms;                  /* quiet time per class after an event (audio ms) */
} yf_detect_config_t;

typedef struct {
    uint16_t cls;   /* class index */
    float score;    /* smoothed score that fired */
    uint32_t patch; /* patch counter */
    uint32_t ts_ms; /* audio time of the patch end: patch * 480 + 975 */
} yf_det_event_t;

typedef struct {
    yf_detect_config_t cfg;
    float hist[YF_DETECT_MAX_CLASSES][YF_DETECT_MAX_WINDOW]; /* last scores per class, circular */
    uint32_t pos;                                            /* next history slot */
    uint32_t seen;                                           /* patches seen, saturating at window */
    uint32_t run[YF_DETECT_MAX_CLASSES];                     /* consecutive patches at/above threshold */
    uint32_t quiet_until_ms[YF_DETECT_MAX_CLASSES];          /* no event before this audio time */
} yf_detect_t;

/* The protocol's defaults (YF_PROTO_DETECTOR_*_DEFAULT), watching no class. */
void yf_detect_config_default(yf_detect_config_t *cfg);

/* 0 when every setting is within the protocol's ranges and every class is below n_labels, else -1. */
int yf_detect_config_check(const yf_detect_config_t *cfg, uint32_t n_labels);

/* Validate cfg (yf_detect_config_check without a label bound) and start from empty history; returns 0, or -1
 * on an out-of-range setting. */
int yf_detect_init(yf_detect_t *d, const yf_detect_config_t *cfg);

/* Forget history, runs and refractory state (keep the configuration). */
void yf_detect_reset(yf_detect_t *d);

/* Feed the float scores (n_scores of them, indexed by class) of patch number `patch`; writes up to
 * max_events events to ev and returns how many. Classes beyond n_scores never fire. */
size_t yf_detect_push(yf_detect_t *d, const float *scores, size_t n_scores, uint32_t patch, yf_det_event_t *ev,
                      size_t max_events);

/* As yf_detect_push, for the model's int8 output with its scale and zero point. */
size_t yf_detect_push_q(yf_detect_t *d, const int8_t *q, size_t n_scores, float scale, int32_t zero_point,
                        uint32_t patch, yf_det_event_t *ev, size_t max_events);

/* Audio time of the end of patch number `patch`, in ms. */
uint32_t yf_detect_ts_ms(uint32_t patch);

#ifdef __cplusplus
}
#endif
#endif
