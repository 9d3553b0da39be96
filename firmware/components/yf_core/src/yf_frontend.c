/* YAMNet's log-mel frontend; see yf_frontend.h and host/yamflash/frontend.py for the definition. */
#include "yf_frontend.h"

#include <math.h>
#include <string.h>

#ifdef YF_USE_ESP_DSP
#include "dsps_fft2r.h"
#endif

#define HALF (YF_FFT_LEN / 2) /* the 512 real inputs run as a 256-point complex FFT */
#define PI_D 3.14159265358979323846

#ifndef YF_USE_ESP_DSP
static unsigned bit_reverse(unsigned x, unsigned bits)
{
    unsigned r = 0;
    for (unsigned i = 0; i < bits; i++) {
        r = (r << 1) | (x & 1u);
        x >>= 1;
    }
    return r;
}
#endif

int yf_frontend_init(yf_frontend_t *fe, const yf_frontend_config_t *cfg)
{
    if (!fe || !cfg || !cfg->mel_first || !cfg->mel_len || !cfg->mel_weights || !(cfg->log_offset >= 0.0f)) {
        return -1;
    }
    memset(fe, 0, sizeof(*fe));
    fe->cfg = *cfg;
    uint32_t off = 0;
    for (unsigned j = 0; j < YF_NUM_MEL; j++) {
        /* A band must lie inside the 257 bins; bin 0 (DC) carries no weight in YAMNet's matrix. */
        if (cfg->mel_len[j] == 0 || cfg->mel_first[j] + (uint32_t)cfg->mel_len[j] > YF_NUM_BINS) {
            return -1;
        }
        fe->mel_offset[j] = off;
        off += cfg->mel_len[j];
    }
    for (unsigned i = 0; i < YF_FRAME_LEN; i++) {
        /* Periodic Hann (divide by N) in double, rounded once, as numpy's reference does. */
        float w = cfg->window ? cfg->window[i] : (float)(0.5 - 0.5 * cos(2.0 * PI_D * i / YF_FRAME_LEN));
        fe->window[i] = w * (1.0f / 32768.0f); /* int16 -> [-1, 1): exact, a power of two */
    }
    /* twiddle[k] = exp(-2 pi i k / 512), k < 256: the real split uses all, the 256-point FFT the even ones. */
    for (unsigned k = 0; k < HALF; k++) {
        fe->twiddle[2 * k] = (float)cos(2.0 * PI_D * k / YF_FFT_LEN);
        fe->twiddle[2 * k + 1] = (float)-sin(2.0 * PI_D * k / YF_FFT_LEN);
    }
    for (unsigned n = 0; n < HALF; n++) {
#ifdef YF_USE_ESP_DSP
        fe->bitrev[n] = (uint16_t)n; /* esp-dsp reads natural order and reorders its output itself */
#else
        fe->bitrev[n] = (uint16_t)bit_reverse(n, 8); /* the portable FFT reads bit-reversed input */
#endif
    }
#ifdef YF_USE_ESP_DSP
    /* esp-dsp keeps one global table; a second init with an existing table returns ESP_OK. */
    if (dsps_fft2r_init_fc32(NULL, HALF) != ESP_OK) {
        return -1;
    }
#endif
    return 0;
}

void yf_frontend_reset(yf_frontend_t *fe)
{
    fe->fill = 0;
    fe->frames = 0;
}

/* In-place HALF-point complex FFT. Portable: radix-2 decimation in time on bit-reversed input. */
static void fft_complex(float *z, const float *tw)
{
#ifdef YF_USE_ESP_DSP
    (void)tw;
    /* Decimation in frequency: natural order in, bit-reversed out, so reorder afterwards. */
    dsps_fft2r_fc32(z, HALF);
    dsps_bit_rev_fc32(z, HALF);
#else
    for (unsigned size = 2; size <= HALF; size <<= 1) {
        unsigned half = size >> 1;
        unsigned step = 2u * (HALF / size); /* exp(-2 pi i j / size) = twiddle[j * 512 / size] */
        for (unsigned base = 0; base < HALF; base += size) {
            for (unsigned j = 0; j < half; j++) {
                float wr = tw[2 * (j * step)], wi = tw[2 * (j * step) + 1];
                float *a = &z[2 * (base + j)];
                float *b = &z[2 * (base + j + half)];
                float br = b[0] * wr - b[1] * wi;
                float bi = b[0] * wi + b[1] * wr;
                b[0] = a[0] - br;
                b[1] = a[1] - bi;
                a[0] += br;
                a[1] += bi;
            }
        }
    }
#endif
}

/* Magnitudes of the 512-point real FFT from the 256-point complex FFT Z of z[n] = x[2n] + i x[2n+1]:
 * X[k] = (Z[k] + conj Z[256-k]) / 2 - i W^k (Z[k] - conj Z[256-k]) / 2, with W = exp(-2 pi i / 512). */
static void real_split_mag(const float *z, const float *tw, float *mag)
{
    mag[0] = fabsf(z[0] + z[1]);
    mag[HALF] = fabsf(z[0] - z[1]);
    for (unsigned k = 1; k < HALF; k++) {
        float ar = z[2 * k], ai = z[2 * k + 1];
        float br = z[2 * (HALF - k)], bi = -z[2 * (HALF - k) + 1]; /* conj Z[256-k] */
        float er = 0.5f * (ar + br), ei = 0.5f * (ai + bi);        /* even part */
        float dr = 0.5f * (ar - br), di = 0.5f * (ai - bi);        /* (Z - conj) / 2 */
        float wr = tw[2 * k], wi = tw[2 * k + 1];
        /* -i W d = (wi dr + wr di) + i (wi di - wr dr) */
        float xr = er + (wi * dr + wr * di);
        float xi = ei + (wi * di - wr * dr);
        mag[k] = sqrtf(xr * xr + xi * xi);
    }
}

void yf_fft_mag(yf_frontend_t *fe, const float in[YF_FFT_LEN], float mag[YF_NUM_BINS])
{
    float *z = fe->work;
    for (unsigned n = 0; n < HALF; n++) {
        unsigned r = fe->bitrev[n];
        z[2 * r] = in[2 * n];
        z[2 * r + 1] = in[2 * n + 1];
    }
    fft_complex(z, fe->twiddle);
    real_split_mag(z, fe->twiddle, mag);
}

static void mel_log(const yf_frontend_t *fe, const float *mag, float out[YF_NUM_MEL])
{
    const yf_frontend_config_t *c = &fe->cfg;
    for (unsigned j = 0; j < YF_NUM_MEL; j++) {
        const float *w = c->mel_weights + fe->mel_offset[j];
        const float *m = mag + c->mel_first[j];
        float acc = 0.0f;
        for (unsigned i = 0; i < c->mel_len[j]; i++) {
            acc += m[i] * w[i];
        }
        out[j] = logf(acc + c->log_offset);
    }
}

void yf_frontend_frame(yf_frontend_t *fe, const int16_t frame[YF_FRAME_LEN], float out[YF_NUM_MEL])
{
    /* Window straight into the FFT buffer, in the bit-reversed order the FFT reads; 400..511 are zero. */
    float *z = fe->work;
    for (unsigned n = 0; n < HALF; n++) {
        unsigned i = 2 * n, r = 2u * fe->bitrev[n];
        z[r] = i < YF_FRAME_LEN ? (float)frame[i] * fe->window[i] : 0.0f;
        z[r + 1] = i + 1 < YF_FRAME_LEN ? (float)frame[i + 1] * fe->window[i + 1] : 0.0f;
    }
    fft_complex(z, fe->twiddle);
    real_split_mag(z, fe->twiddle, fe->mag);
    mel_log(fe, fe->mag, out);
}

size_t yf_frontend_step(yf_frontend_t *fe, const int16_t *pcm, size_t n, float out[YF_NUM_MEL], int *got_frame)
{
    size_t take = YF_FRAME_LEN - fe->fill;
    if (take > n) {
        take = n;
    }
    if (take) {
        memcpy(&fe->pending[fe->fill], pcm, take * sizeof(int16_t));
        fe->fill += (uint32_t)take;
    }
    *got_frame = 0;
    if (fe->fill == YF_FRAME_LEN) {
        yf_frontend_frame(fe, fe->pending, out);
        /* Keep the 240-sample overlap with the next frame (480 bytes: cheaper than a ring index). */
        memmove(fe->pending, &fe->pending[YF_FRAME_HOP], (YF_FRAME_LEN - YF_FRAME_HOP) * sizeof(int16_t));
        fe->fill = YF_FRAME_LEN - YF_FRAME_HOP;
        fe->frames++;
        *got_frame = 1;
    }
    return take;
}

size_t yf_frontend_push(yf_frontend_t *fe, const int16_t *pcm, size_t n, float *out, size_t max_frames,
                        size_t *consumed)
{
    size_t used = 0, frames = 0;
    while (frames < max_frames && used < n) {
        int got = 0;
        used += yf_frontend_step(fe, pcm + used, n - used, out + frames * YF_NUM_MEL, &got);
        frames += (size_t)got;
    }
    if (consumed) {
        *consumed = used;
    }
    return frames;
}
