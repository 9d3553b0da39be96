/* Sliding-window detector: see yf_detect.h for the rules. */
#include "yf_detect.h"

#include <string.h>

#include "yf_quant.h"

uint32_t yf_detect_ts_ms(uint32_t patch)
{
    return patch * YF_DETECT_PATCH_HOP_MS + YF_DETECT_PATCH_MS;
}

void yf_detect_config_default(yf_detect_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->threshold = YF_PROTO_DETECTOR_THRESHOLD_DEFAULT;
    cfg->window = YF_PROTO_DETECTOR_WINDOW_DEFAULT;
    cfg->min_count = YF_PROTO_DETECTOR_MIN_COUNT_DEFAULT;
    cfg->refractory_ms = YF_PROTO_DETECTOR_REFRACTORY_MS_DEFAULT;
}

int yf_detect_config_check(const yf_detect_config_t *cfg, uint32_t n_labels)
{
    if (!cfg || cfg->n_classes > YF_DETECT_MAX_CLASSES || cfg->window < YF_PROTO_DETECTOR_WINDOW_MIN ||
        cfg->window > YF_PROTO_DETECTOR_WINDOW_MAX || cfg->min_count < YF_PROTO_DETECTOR_MIN_COUNT_MIN ||
        cfg->min_count > YF_PROTO_DETECTOR_MIN_COUNT_MAX || cfg->refractory_ms > YF_PROTO_DETECTOR_REFRACTORY_MS_MAX ||
        !(cfg->threshold >= YF_PROTO_DETECTOR_THRESHOLD_MIN) || !(cfg->threshold <= YF_PROTO_DETECTOR_THRESHOLD_MAX)) {
        return -1;
    }
    for (uint32_t i = 0; i < cfg->n_classes; i++) {
        if (cfg->classes[i] >= n_labels) {
            return -1;
        }
    }
    return 0;
}

int yf_detect_init(yf_detect_t *d, const yf_detect_config_t *cfg)
{
    if (!d || yf_detect_config_check(cfg, UINT32_MAX) != 0) {
        return -1;
    }
    memset(d, 0, sizeof(*d));
    d->cfg = *cfg;
    return 0;
}

void yf_detect_reset(yf_detect_t *d)
{
    yf_detect_config_t cfg = d->cfg;
    memset(d, 0, sizeof(*d));
    d->cfg = cfg;
}

/* now at or after until, in wrapping uint32 arithmetic (audio time wraps after ~49 days). */
static int time_reached(uint32_t now, uint32_t until)
{
    return (int32_t)(now - until) >= 0;
}

static size_t detect_step(yf_detect_t *d, const float *scores, const int8_t *q, size_t n_scores, float scale,
                          int32_t zp, uint32_t patch, yf_det_event_t *ev, size_t max_events)
{
    const yf_detect_config_t *c = &d->cfg;
    size_t n_ev = 0;
    uint32_t ts = yf_detect_ts_ms(patch);
    if (d->seen < c->window) {
        d->seen++;
    }
    for (uint32_t k = 0; k < c->n_classes; k++) {
        uint16_t cls = c->classes[k];
        float s = 0.0f;
        if (cls < n_scores) {
            s = q ? yf_dequantize1(q[cls], scale, zp) : scores[cls];
        }
        d->hist[k][d->pos] = s;
        if (d->seen < c->window || cls >= n_scores) {
            continue;
        }
        /* Sum the window afresh (at most 32 adds): a running sum would drift in float. */
        float sum = 0.0f;
        for (uint32_t i = 0; i < c->window; i++) {
            sum += d->hist[k][i];
        }
        float mean = sum / (float)c->window;
        if (mean >= c->threshold) {
            d->run[k]++;
        } else {
            d->run[k] = 0;
        }
        if (d->run[k] >= c->min_count && (d->quiet_until_ms[k] == 0 || time_reached(ts, d->quiet_until_ms[k]))) {
            if (n_ev < max_events) {
                ev[n_ev].cls = cls;
                ev[n_ev].score = mean;
                ev[n_ev].patch = patch;
                ev[n_ev].ts_ms = ts;
                n_ev++;
            }
            d->run[k] = 0;
            d->quiet_until_ms[k] = ts + c->refractory_ms; /* 0 means "never fired" (see above) */
        }
    }
    d->pos = (d->pos + 1) % c->window;
    return n_ev;
}

size_t yf_detect_push(yf_detect_t *d, const float *scores, size_t n_scores, uint32_t patch, yf_det_event_t *ev,
                      size_t max_events)
{
    return detect_step(d, scores, NULL, n_scores, 0.0f, 0, patch, ev, max_events);
}

size_t yf_detect_push_q(yf_detect_t *d, const int8_t *q, size_t n_scores, float scale, int32_t zero_point,
                        uint32_t patch, yf_det_event_t *ev, size_t max_events)
{
    return detect_step(d, NULL, q, n_scores, scale, zero_point, patch, ev, max_events);
}
