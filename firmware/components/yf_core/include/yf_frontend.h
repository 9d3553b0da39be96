/* yf_frontend: YAMNet's log-mel frontend, streaming, on int16 PCM at 16 kHz.
 *
 * Frames of 400 samples every 160, periodic Hann window, 512-point real FFT, magnitude, sparse mel
 * (tables from the generated header), log(mel + offset). Exactly the definition of
 * host/yamflash/frontend.py; the C tests compare the two on real audio.
 * Static memory: the caller owns yf_frontend_t (about 8 KiB); nothing is allocated.
 * Build with -DYF_USE_ESP_DSP on the chip to run the FFT on esp-dsp instead of the portable one.
 */
#ifndef YF_FRONTEND_H
#define YF_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define YF_SAMPLE_RATE 16000
#define YF_FRAME_LEN 400
#define YF_FRAME_HOP 160
#define YF_FFT_LEN 512
#define YF_NUM_BINS (YF_FFT_LEN / 2 + 1)
#define YF_NUM_MEL 64
#define YF_LOG_OFFSET 0.001f

#if defined(__GNUC__) || defined(__clang__)
#define YF_ALIGN16 __attribute__((aligned(16)))
#else
#define YF_ALIGN16
#endif

/* Tables the frontend reads; they must outlive the frontend (the generated header's are const). */
typedef struct {
    const uint16_t *mel_first; /* [YF_NUM_MEL] first FFT bin of each band (1..256) */
    const uint16_t *mel_len;   /* [YF_NUM_MEL] number of weights of each band */
    const float *mel_weights;  /* every band's weights back to back, band 0 first */
    const float *window;       /* [YF_FRAME_LEN] analysis window, or NULL: periodic Hann computed at init */
    float log_offset;          /* added before the log: YF_LOG_OFFSET for YAMNet */
} yf_frontend_config_t;

typedef struct {
    yf_frontend_config_t cfg;
    uint32_t mel_offset[YF_NUM_MEL];  /* index of each band's first weight in cfg.mel_weights */
    float window[YF_FRAME_LEN];       /* window pre-scaled by 1/32768 (exact: a power of two) */
    int16_t pending[YF_FRAME_LEN];    /* samples of the frame being filled */
    uint32_t fill;                    /* samples in pending */
    uint32_t frames;                  /* frames produced since init/reset */
    float work[2 * YF_FFT_LEN] YF_ALIGN16; /* FFT buffer (esp-dsp wants 16-byte alignment) */
    float twiddle[YF_FFT_LEN];        /* cos/sin pairs of the 256-point FFT and of the real split */
    uint16_t bitrev[YF_FFT_LEN / 2];  /* bit-reversal permutation of the 256-point FFT */
    float mag[YF_NUM_BINS];           /* magnitude spectrum of the last frame */
} yf_frontend_t;

/* Check the tables and set up the frontend; returns 0, or -1 when a table is missing or out of range. */
int yf_frontend_init(yf_frontend_t *fe, const yf_frontend_config_t *cfg);

/* Drop buffered samples and restart the frame count (e.g. on a change of audio source). */
void yf_frontend_reset(yf_frontend_t *fe);

/* Consume PCM up to the end of the next complete frame; returns samples consumed. When a frame
 * completes, writes its 64 log-mel values to out and sets *got_frame to 1 (else 0). Call in a loop. */
size_t yf_frontend_step(yf_frontend_t *fe, const int16_t *pcm, size_t n, float out[YF_NUM_MEL], int *got_frame);

/* Consume PCM until it is exhausted or max_frames frames were written to out (row-major [k][64]);
 * returns frames written and sets *consumed (may be NULL) to the samples consumed. */
size_t yf_frontend_push(yf_frontend_t *fe, const int16_t *pcm, size_t n, float *out, size_t max_frames,
                        size_t *consumed);

/* Log-mel of one full frame of YF_FRAME_LEN samples, independent of the streaming state. */
void yf_frontend_frame(yf_frontend_t *fe, const int16_t frame[YF_FRAME_LEN], float out[YF_NUM_MEL]);

/* The 512-point real FFT's magnitude of 512 real inputs into mag[257] (exposed for tests). */
void yf_fft_mag(yf_frontend_t *fe, const float in[YF_FFT_LEN], float mag[YF_NUM_BINS]);

#ifdef __cplusplus
}
#endif
#endif
