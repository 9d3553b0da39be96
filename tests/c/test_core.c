/* yf_core unit tests: plain C, run under AddressSanitizer and UndefinedBehaviorSanitizer by `make test-c`.
 * The comparison with the Python reference on real audio lives in tests/test_yf_core.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yf_core.h"

static int failures, checks;

#define CHECK(cond)                                                                                            \
    do {                                                                                                       \
        checks++;                                                                                              \
        if (!(cond)) {                                                                                         \
            failures++;                                                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                           \
        }                                                                                                      \
    } while (0)

static uint32_t rng_state = 12345u;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Synthetic mel tables: band j covers bins 1+3j .. 1+3j+3 with weights 0.25 (shape is not the point here). */
static uint16_t t_first[YF_NUM_MEL], t_len[YF_NUM_MEL];
static float t_w[YF_NUM_MEL * 4];
static yf_frontend_config_t test_config(void)
{
    for (int j = 0; j < YF_NUM_MEL; j++) {
        t_first[j] = (uint16_t)(1 + 3 * j);
        t_len[j] = 4;
        for (int k = 0; k < 4; k++) {
            t_w[4 * j + k] = 0.25f;
        }
    }
    yf_frontend_config_t c = {t_first, t_len, t_w, NULL, YF_LOG_OFFSET};
    return c;
}

static yf_frontend_t fe, fe2; /* 8 KiB each: static, as on the chip */

static void test_fft(void)
{
    yf_frontend_config_t c = test_config();
    CHECK(yf_frontend_init(&fe, &c) == 0);
    float x[YF_FFT_LEN], mag[YF_NUM_BINS];
    double worst = 0.0;
    for (int trial = 0; trial < 4; trial++) {
        for (int i = 0; i < YF_FFT_LEN; i++) {
            x[i] = (float)((int32_t)(rnd() % 2001) - 1000) / 1000.0f;
        }
        yf_fft_mag(&fe, x, mag);
        for (int k = 0; k < YF_NUM_BINS; k += 3) { /* naive DFT in double as the reference */
            double re = 0.0, im = 0.0;
            for (int n = 0; n < YF_FFT_LEN; n++) {
                re += x[n] * cos(2.0 * 3.14159265358979323846 * k * n / YF_FFT_LEN);
                im -= x[n] * sin(2.0 * 3.14159265358979323846 * k * n / YF_FFT_LEN);
            }
            double err = fabs(sqrt(re * re + im * im) - mag[k]);
            worst = err > worst ? err : worst;
        }
    }
    CHECK(worst < 1e-3); /* |X| is ~13 here: float32 rounding is ~1e-5 */
    for (int i = 0; i < YF_FFT_LEN; i++) {
        x[i] = (float)cos(2.0 * 3.14159265358979323846 * 10 * i / YF_FFT_LEN);
    }
    yf_fft_mag(&fe, x, mag);
    CHECK(fabsf(mag[10] - 256.0f) < 1e-3f && mag[11] < 1e-3f && mag[0] < 1e-3f && mag[256] < 1e-3f);
    for (int i = 0; i < YF_FFT_LEN; i++) {
        x[i] = (i & 1) ? -1.0f : 1.0f; /* Nyquist */
    }
    yf_fft_mag(&fe, x, mag);
    CHECK(fabsf(mag[256] - 512.0f) < 1e-3f && mag[255] < 1e-3f);
}

static void test_frontend_streaming(void)
{
    yf_frontend_config_t c = test_config();
    CHECK(yf_frontend_init(&fe, &c) == 0);
    CHECK(yf_frontend_init(&fe2, &c) == 0);
    enum { N = 16000 };
    static int16_t pcm[N];
    static float a[N / YF_FRAME_HOP][YF_NUM_MEL], b[N / YF_FRAME_HOP][YF_NUM_MEL];
    for (int i = 0; i < N; i++) {
        pcm[i] = (int16_t)(rnd() & 0xFFFF);
    }
    size_t used = 0;
    size_t na = yf_frontend_push(&fe, pcm, N, &a[0][0], N / YF_FRAME_HOP, &used);
    CHECK(used == N && na == 1 + (N - YF_FRAME_LEN) / YF_FRAME_HOP);
    size_t nb = 0, pos = 0;
    while (pos < N) { /* the same audio in random chunks, including empty ones */
        size_t chunk = rnd() % 700;
        if (chunk > N - pos) {
            chunk = N - pos;
        }
        size_t off = 0;
        while (off < chunk) {
            int got = 0;
            off += yf_frontend_step(&fe2, pcm + pos + off, chunk - off, b[nb], &got);
            nb += (size_t)got;
        }
        pos += chunk;
    }
    CHECK(nb == na && memcmp(a, b, na * sizeof(a[0])) == 0 && fe2.frames == na);
    float one[YF_NUM_MEL];
    yf_frontend_frame(&fe, pcm + 160 * 7, one);
    CHECK(memcmp(one, a[7], sizeof(one)) == 0);
    /* Silence gives log(offset) in every band. */
    static const int16_t zeros[YF_FRAME_LEN];
    yf_frontend_frame(&fe, zeros, one);
    CHECK(fabsf(one[0] - logf(YF_LOG_OFFSET)) < 1e-6f && fabsf(one[63] - logf(YF_LOG_OFFSET)) < 1e-6f);
    /* max_frames stops consumption right after the frame that filled the buffer. */
    yf_frontend_reset(&fe);
    CHECK(yf_frontend_push(&fe, pcm, N, &a[0][0], 2, &used) == 2 && used == YF_FRAME_LEN + YF_FRAME_HOP);
    /* Bad tables are refused. */
    t_first[5] = 255;
    CHECK(yf_frontend_init(&fe2, &c) == -1);
    t_first[5] = 16;
    t_len[9] = 0;
    CHECK(yf_frontend_init(&fe2, &c) == -1);
}

static void test_patch(void)
{
    static yf_patcher_t p;
    float frame[YF_NUM_MEL], out[YF_PATCH_VALUES];
    int8_t q[YF_PATCH_VALUES];
    yf_patch_init(&p);
    int ready_at[8], n_ready = 0;
    for (int f = 0; f < 96 + 48 * 5; f++) {
        for (int j = 0; j < YF_NUM_MEL; j++) {
            frame[j] = (float)f + (float)j / 100.0f;
        }
        if (yf_patch_push(&p, frame)) {
            ready_at[n_ready++] = f + 1;
            uint32_t first = (p.patches - 1) * YF_PATCH_HOP; /* contiguous: patch k starts at frame 48k */
            yf_patch_copy(&p, out);
            CHECK(out[0] == (float)first && out[YF_PATCH_VALUES - 1] == (float)(first + 95) + 0.63f);
            CHECK(yf_patch_row(&p, 50)[2] == (float)(first + 50) + 0.02f);
            yf_patch_quantize(&p, 2.0f, -10, q);
            CHECK(q[0] == yf_quantize1(out[0], 2.0f, -10) && q[6000] == yf_quantize1(out[6000], 2.0f, -10));
        }
    }
    CHECK(n_ready == 6 && ready_at[0] == 96 && ready_at[1] == 144 && ready_at[5] == 336 && p.frames == 336);
}

static void test_quant(void)
{
    CHECK(yf_quantize1(0.5f, 1.0f, 0) == 1);
    CHECK(yf_quantize1(-0.5f, 1.0f, 0) == -1);
    CHECK(yf_quantize1(1.5f, 1.0f, 0) == 2);
    CHECK(yf_quantize1(-2.5f, 1.0f, 0) == -3);
    CHECK(yf_quantize1(2.49f, 1.0f, 0) == 2);
    CHECK(yf_quantize1(0.3f, 0.1f, 5) == 8);
    CHECK(yf_quantize1(1000.0f, 1.0f, 0) == 127 && yf_quantize1(-1000.0f, 1.0f, 0) == -128);
    CHECK(yf_quantize1(126.6f, 1.0f, 3) == 127 && yf_quantize1(-1e30f, 1e-30f, 0) == -128);
    CHECK(yf_quantize1(NAN, 1.0f, -7) == -7 && yf_quantize1(INFINITY, 1.0f, 0) == 127);
    CHECK(yf_dequantize1(-128, 0.5f, -128) == 0.0f && yf_dequantize1(127, 0.5f, -128) == 127.5f);
}

static void test_detect(void)
{
    static yf_detect_t d;
    yf_det_event_t ev[4];
    yf_detect_config_t c;
    memset(&c, 0, sizeof(c));
    c.classes[0] = 3;
    c.classes[1] = 700; /* beyond the scores given: never fires */
    c.n_classes = 2;
    c.threshold = 0.5f;
    c.window = 2;
    c.min_count = 2;
    c.refractory_ms = 1000;
    CHECK(yf_detect_init(&d, &c) == 0);
    float s[5] = {0};
    /* scores of class 3 per patch, and the patch where an event is expected */
    const float seq[] = {0.9f, 0.9f, 0.9f, 0.9f, 0.9f, 0.9f, 0.9f, 0.0f, 0.0f, 0.9f, 0.9f, 0.2f};
    int fired[12] = {0};
    for (uint32_t k = 0; k < 12; k++) {
        s[3] = seq[k];
        size_t n = yf_detect_push(&d, s, 5, k, ev, 4);
        fired[k] = (int)n;
        if (n) {
            CHECK(ev[0].cls == 3 && ev[0].patch == k && ev[0].ts_ms == k * 480 + 975);
        }
    }
    /* k=1 fills the window (run 1); k=2 run 2 fires (ts 1935, quiet until 2935) and restarts the run;
     * k=4 has run 2 but ts 2895 < 2935, so it waits; k=5 (ts 3375) fires; k=7..9 means 0.45/0/0.45 reset
     * the run; k=10 mean 0.9 (run 1), k=11 mean 0.55 (run 2) fires. */
    int want[12] = {0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1};
    CHECK(memcmp(fired, want, sizeof(want)) == 0);
    /* Invalid settings are refused. */
    c.window = 0;
    CHECK(yf_detect_init(&d, &c) == -1);
    c.window = 33;
    CHECK(yf_detect_init(&d, &c) == -1);
    c.window = 3;
    c.threshold = 1.5f;
    CHECK(yf_detect_init(&d, &c) == -1);
    c.threshold = NAN;
    CHECK(yf_detect_init(&d, &c) == -1);
    /* int8 path: output scale 1/256, zp -128 (TFLite's softmax output). */
    c.threshold = 0.5f;
    c.window = 1;
    c.min_count = 1;
    c.refractory_ms = 0;
    CHECK(yf_detect_init(&d, &c) == 0);
    int8_t q[5] = {-128, -128, -128, 0, -128}; /* class 3: (0 + 128) / 256 = 0.5 */
    CHECK(yf_detect_push_q(&d, q, 5, 1.0f / 256.0f, -128, 0, ev, 4) == 1 && ev[0].score == 0.5f);
    CHECK(yf_detect_push_q(&d, q, 5, 1.0f / 256.0f, -128, 1, ev, 0) == 0); /* no room: no overflow */
}

static void test_proto_basics(void)
{
    char b64[64];
    uint8_t bin[64];
    size_t n = 0;
    CHECK(yf_b64_encode("foobar", 6, b64, sizeof(b64)) == 8 && memcmp(b64, "Zm9vYmFy", 8) == 0);
    CHECK(yf_b64_encode("fo", 2, b64, sizeof(b64)) == 4 && memcmp(b64, "Zm8=", 4) == 0);
    CHECK(yf_b64_encode("fo", 2, b64, 3) == 0);
    CHECK(yf_b64_decode("Zm8=", 4, bin, sizeof(bin), &n) == 0 && n == 2 && memcmp(bin, "fo", 2) == 0);
    CHECK(yf_b64_decode("Zm9=", 4, bin, sizeof(bin), &n) == -1); /* spare bits */
    CHECK(yf_b64_decode("Zm9vYmFy", 8, bin, 5, &n) == -1);      /* does not fit */

    static yf_line_asm_t a;
    yf_line_init(&a);
    yf_line_t line;
    const char *s = "log\r\n@yf {\"t\":\"cmd\",\"v\":1,\"id\":7,\"cmd\":\"pcm\",\"seq\":3,\"d\":\"AQACAA==\"}\n";
    size_t used = yf_line_feed(&a, (const uint8_t *)s, strlen(s), &line);
    CHECK(used == 5 && line.kind == YF_LINE_LOG && line.len == 3 && memcmp(line.text, "log", 3) == 0);
    used += yf_line_feed(&a, (const uint8_t *)s + used, strlen(s) - used, &line);
    CHECK(used == strlen(s) && line.kind == YF_LINE_PROTO);
    static yf_cmd_t cmd;
    static uint8_t payload[YF_PROTO_PAYLOAD_MAX];
    int16_t pcm[2];
    CHECK(yf_proto_parse_cmd(line.json, line.json_len, &cmd, payload, sizeof(payload)) == YF_PARSE_OK);
    CHECK(cmd.kind == YF_CMD_PCM && cmd.id == 7 && cmd.seq == 3 && cmd.data_len == 4);
    CHECK(yf_pcm_from_le(cmd.data, cmd.data_len, pcm) == 2 && pcm[0] == 1 && pcm[1] == 2);
    CHECK(strcmp(cmd.name, "pcm") == 0);
    /* payload buffer too small for the samples: an argument error, not an overflow */
    CHECK(yf_proto_parse_cmd(line.json, line.json_len, &cmd, payload, 3) == YF_PARSE_ARG && cmd.err_msg);
    a.bad_lines = 0;
    yf_line_bad(&a);
    CHECK(a.bad_lines == 1 && a.proto_lines == 1 && a.log_lines == 1);

    /* The writer never writes past cap, for every cap, and either completes the line or refuses it. */
    char full[256], buf[256];
    yf_jw_t w;
    yf_proto_reply_begin(&w, full, sizeof(full), 42, "bench", true);
    yf_jw_arr(&w, "ops");
    yf_jw_obj(&w, NULL);
    yf_jw_str(&w, "op", "CONV_2D");
    yf_jw_num(&w, "us", 1.5);
    yf_jw_close(&w);
    yf_jw_close(&w);
    size_t len = yf_jw_end(&w);
    CHECK(len > 0 && strcmp(full, "@yf {\"t\":\"reply\",\"v\":1,\"id\":42,\"cmd\":\"bench\",\"ok\":true,"
                                  "\"ops\":[{\"op\":\"CONV_2D\",\"us\":1.5}]}\n") == 0);
    for (size_t cap = 0; cap <= len + 1; cap++) {
        char *tight = malloc(cap ? cap : 1); /* exact size, so ASan sees any overrun */
        yf_proto_reply_begin(&w, tight, cap, 42, "bench", true);
        yf_jw_arr(&w, "ops");
        yf_jw_obj(&w, NULL);
        yf_jw_str(&w, "op", "CONV_2D");
        yf_jw_num(&w, "us", 1.5);
        size_t got = yf_jw_end(&w);
        CHECK(cap > len ? got == len && memcmp(tight, full, len) == 0 : got == 0);
        free(tight);
    }
    (void)buf;

    uint32_t us[7] = {50, 10, 40, 20, 30, 70, 60};
    yf_bench_summary_t sum;
    yf_bench_summarize(us, 7, &sum);
    CHECK(sum.min == 10 && sum.max == 70 && sum.p50 == 40 && sum.p90 == 70 && sum.mean == 40.0);
    CHECK(fabs(sum.std - 20.0) < 1e-9 && us[0] == 10 && us[6] == 70);
    yf_bench_summarize(us, 0, &sum);
    CHECK(sum.n == 0 && sum.max == 0);
}

/* Random and mutated input: nothing crashes (the sanitizers watch) and the counters add up. */
static void test_fuzz(void)
{
    static yf_line_asm_t a;
    static yf_cmd_t cmd;
    static uint8_t payload[YF_PROTO_PAYLOAD_MAX];
    static uint8_t chunk[4096];
    yf_line_init(&a);
    const char *seeds[] = {
        "{\"t\":\"cmd\",\"v\":1,\"id\":1,\"cmd\":\"detector\",\"classes\":[1,2],\"threshold\":0.5,\"window\":3}",
        "{\"t\":\"cmd\",\"v\":1,\"id\":2,\"cmd\":\"pcm\",\"seq\":1,\"d\":\"AQACAA==\"}",
        "{\"t\":\"cmd\",\"v\":1,\"id\":3,\"cmd\":\"source\",\"src\":\"\\u0068ost\",\"x\":{\"a\":[\"\\ud83d\\ude00\"]}}",
    };
    uint32_t newlines = 0, ok = 0;
    for (int iter = 0; iter < 20000; iter++) {
        const char *seed = seeds[rnd() % 3];
        size_t n = strlen(seed);
        char m[256];
        memcpy(m, seed, n);
        int muts = (int)(rnd() % 3); /* 0: the seed itself, so the success path is exercised too */
        for (int k = 0; k < muts; k++) {
            m[rnd() % n] = (char)(rnd() & 0xFF);
        }
        size_t mlen = rnd() % 4 == 0 ? rnd() % (n + 1) : n;
        yf_parse_status_t st = yf_proto_parse_cmd(m, mlen, &cmd, payload, sizeof(payload));
        ok += st == YF_PARSE_OK;
        if (iter % 1000 == 0) { /* an over-long line now and then */
            memset(chunk, 'x', sizeof(chunk));
            for (int r = 0; r < 4; r++) {
                yf_line_t l;
                size_t pos = 0;
                while (pos < sizeof(chunk)) {
                    pos += yf_line_feed(&a, chunk + pos, sizeof(chunk) - pos, &l);
                }
            }
            continue;
        }
        /* The mutated command as a protocol line, then random bytes (one in eight a newline). */
        size_t len = 0;
        memcpy(chunk, "\n@yf ", 5);
        memcpy(chunk + 5, m, mlen);
        len = 5 + mlen;
        chunk[len++] = '\n';
        size_t extra = rnd() % 2048;
        for (size_t i = 0; i < extra; i++) {
            chunk[len++] = (uint8_t)(rnd() % 8 == 0 ? '\n' : rnd() & 0xFF);
        }
        for (size_t i = 0; i < len; i++) {
            newlines += chunk[i] == '\n';
        }
        size_t pos = 0;
        while (pos < len) {
            yf_line_t l;
            pos += yf_line_feed(&a, chunk + pos, len - pos, &l);
            if (l.kind == YF_LINE_PROTO &&
                yf_proto_parse_cmd(l.json, l.json_len, &cmd, payload, sizeof(payload)) == YF_PARSE_BAD) {
                yf_line_bad(&a);
            }
        }
    }
    CHECK(ok > 100); /* some mutations stay valid, so the parser's success path is fuzzed too */
    CHECK(a.long_lines == 20 && a.proto_lines > 10000 && a.bad_lines > a.long_lines);
    /* Every newline ends one line: returned, or the end of a discarded one (counted when it overflowed). */
    CHECK(a.proto_lines + a.log_lines + a.long_lines == newlines + (a.discarding ? 1u : 0u));
}

/* ---- yf_device: the board's command handling, against a recording app ---- */

typedef struct {
    char lines[64][1024];
    size_t n_lines;
    int src_calls, resets, patches, bench_n, stream_scores;
    size_t pcm_n;
    yf_detect_config_t det;
    uint32_t bench_id;
} mock_app_t;

static void m_emit(void *ctx, const char *line, size_t len)
{
    mock_app_t *m = ctx;
    if (m->n_lines < 64 && len < sizeof m->lines[0]) {
        memcpy(m->lines[m->n_lines], line, len);
        m->lines[m->n_lines++][len] = '\0';
    }
}

static int m_hello(void *ctx, yf_hello_t *h, yf_op_err_t *e)
{
    (void)ctx;
    (void)e;
    h->fw = "t";
    h->board = "mock";
    h->model_sha256 = "00";
    h->clock = "chip";
    h->arena_where = "psram";
    h->labels = 10;
    return 0;
}

static int m_source(void *ctx, yf_src_t s, yf_op_err_t *e)
{
    (void)s;
    (void)e;
    ((mock_app_t *)ctx)->src_calls++;
    return 0;
}

static int m_pcm(void *ctx, const int16_t *pcm, size_t n, size_t *accepted, yf_op_err_t *e)
{
    (void)pcm;
    (void)e;
    ((mock_app_t *)ctx)->pcm_n = n;
    *accepted = n;
    return 0;
}

static int m_patch(void *ctx, const yf_patch_req_t *r, yf_op_err_t *e)
{
    (void)r;
    mock_app_t *m = ctx;
    if (m->patches++ == 1) { /* the second patch finds the app busy */
        e->code = YF_E_BUSY;
        e->msg = "busy";
        return -1;
    }
    return 0;
}

static void m_stream(void *ctx, bool scores, bool patches)
{
    (void)patches;
    ((mock_app_t *)ctx)->stream_scores = scores;
}

static int m_det_get(void *ctx, yf_detect_config_t *cfg, uint32_t *n_labels, yf_op_err_t *e)
{
    (void)e;
    *cfg = ((mock_app_t *)ctx)->det;
    *n_labels = 10;
    return 0;
}

static int m_det_set(void *ctx, const yf_detect_config_t *cfg, yf_op_err_t *e)
{
    (void)e;
    ((mock_app_t *)ctx)->det = *cfg;
    return 0;
}

static int m_bench(void *ctx, uint32_t id, uint32_t n, yf_op_err_t *e)
{
    (void)e;
    ((mock_app_t *)ctx)->bench_n = (int)n;
    ((mock_app_t *)ctx)->bench_id = id;
    return 0;
}

static void m_reset(void *ctx)
{
    ((mock_app_t *)ctx)->resets++;
}

static const yf_device_ops_t MOCK_OPS = {m_emit, m_hello, NULL, m_source, m_pcm, m_patch, m_stream,
                                         m_det_get, m_det_set, m_bench, m_reset};

/* Send one command line; returns the last line the device emitted ("" if none). */
static const char *dev_send(yf_device_t *d, mock_app_t *m, const char *json)
{
    char line[512];
    size_t before = m->n_lines;
    int n = snprintf(line, sizeof line, "@yf %s\n", json);
    yf_device_feed(d, (const uint8_t *)line, (size_t)n);
    return m->n_lines > before ? m->lines[m->n_lines - 1] : "";
}

static void test_device(void)
{
    static yf_device_t d;
    static mock_app_t m;
    memset(&m, 0, sizeof m);
    yf_detect_config_default(&m.det);
    CHECK(m.det.window == YF_PROTO_DETECTOR_WINDOW_DEFAULT && m.det.refractory_ms == YF_PROTO_DETECTOR_REFRACTORY_MS_DEFAULT);
    yf_device_init(&d, &MOCK_OPS, &m, YF_SRC_MIC);

    CHECK(strcmp(dev_send(&d, &m, "{\"t\":\"cmd\",\"v\":1,\"id\":1,\"cmd\":\"ping\"}"),
                 "@yf {\"t\":\"reply\",\"v\":1,\"id\":1,\"cmd\":\"ping\",\"ok\":true}\n") == 0);
    /* pcm while the source is the microphone: E_BUSY, nothing handed to the app */
    const char *r = dev_send(&d, &m, "{\"t\":\"cmd\",\"v\":1,\"id\":2,\"cmd\":\"pcm\",\"seq\":0,\"d\":\"AAA=\"}");
    CHECK(strstr(r, "\"ok\":false,\"err\":\"E_BUSY\"") != NULL && m.pcm_n == 0);
    r = dev_send(&d, &m, "{\"t\":\"cmd\",\"v\":1,\"id\":3,\"cmd\":\"source\",\"src\":\"host\"}");
    CHECK(strstr(r, "\"ok\":true,\"src\":\"host\"") != NULL && m.src_calls == 1 && yf_device_src(&d) == YF_SRC_HOST);
    r = dev_send(&d, &m, "{\"t\":\"cmd\",\"v\":1,\"id\":4,\"cmd\":\"pcm\",\"seq\":5,\"d\":\"AAABAA==\"}");
    CHECK(strstr(r, "\"ok\":true,\"seq\":5,\"accepted\":2}") != NULL && m.pcm_n == 2);
    r = dev_send(&d, &m, "{\"t\":\"cmd\",\"v\":1,\"id\":5,\"cmd\":\"pcm\",\"seq\":7,\"d\":\"AAA=\"}");
    CHECK(strstr(r, "\"ok\":false,\"err\":\"E_SEQ\",\"msg\":\"pcm seq gap\",\"expected\":6,\"seq\":7,\"accepted\":1}") != NULL);
    /* a patch is answered later by the app; a refused one at once */
    size_t lines = m.n_lines;
    static char q[8200];
    memset(q, 'A', 8192);
    q[8192] = '\0';
    static char cmd[8400];
    snprintf(cmd, sizeof cmd, "{\"t\":\"cmd\",\"v\":1,\"id\":6,\"cmd\":\"patch\",\"seq\":0,\"q\":\"%s\"}", q);
    char *big = malloc(8500);
    int bn = snprintf(big, 8500, "@yf %s\n", cmd);
    yf_device_feed(&d, (const uint8_t *)big, (size_t)bn);
    CHECK(m.patches == 1 && m.n_lines == lines);
    yf_device_feed(&d, (const uint8_t *)big, (size_t)bn);
    CHECK(m.patches == 2 && strstr(m.lines[m.n_lines - 1], "\"err\":\"E_BUSY\",\"msg\":\"busy\"") != NULL);
    free(big);
    /* detector: a partial update keeps the rest; a class beyond the labels is refused and changes nothing */
    r = dev_send(&d, &m, "{\"t\":\"cmd\",\"v\":1,\"id\":7,\"cmd\":\"detector\",\"classes\":[3,9],\"window\":5}");
    CHECK(strstr(r, "\"classes\":[3,9],\"threshold\":0.5,\"window\":5,\"min_count\":2,\"refractory_ms\":2000}") != NULL);
    r = dev_send(&d, &m, "{\"t\":\"cmd\",\"v\":1,\"id\":8,\"cmd\":\"detector\",\"classes\":[10]}");
    CHECK(strstr(r, "\"err\":\"E_ARG\"") != NULL && m.det.n_classes == 2 && m.det.window == 5);
    r = dev_send(&d, &m, "{\"t\":\"cmd\",\"v\":1,\"id\":9,\"cmd\":\"detector\",\"refractory_ms\":86400001}");
    CHECK(strstr(r, "refractory_ms must be an integer 0..86400000") != NULL);
    /* bench: default n from the spec; n over the limit is an argument error */
    dev_send(&d, &m, "{\"t\":\"cmd\",\"v\":1,\"id\":10,\"cmd\":\"bench\"}");
    CHECK(m.bench_n == YF_PROTO_BENCH_N_DEFAULT && m.bench_id == 10);
    r = dev_send(&d, &m, "{\"t\":\"cmd\",\"v\":1,\"id\":11,\"cmd\":\"bench\",\"n\":1001}");
    CHECK(strstr(r, "\"err\":\"E_ARG\",\"msg\":\"n must be an integer 1..1000\"") != NULL && m.bench_n == 10);
    r = dev_send(&d, &m, "{\"t\":\"cmd\",\"v\":1,\"id\":12,\"cmd\":\"stream\",\"scores\":true}");
    CHECK(strstr(r, "\"scores\":true,\"patches\":false}") != NULL && m.stream_scores);
    r = dev_send(&d, &m, "{\"t\":\"cmd\",\"v\":1,\"id\":13,\"cmd\":\"info\"}");
    CHECK(strstr(r, "\"board\":\"mock\"") != NULL && strstr(r, "\"src\":\"host\"") != NULL);
    r = dev_send(&d, &m, "{\"t\":\"cmd\",\"v\":1,\"id\":14,\"cmd\":\"nope\"}");
    CHECK(strstr(r, "\"err\":\"E_UNKNOWN_CMD\"") != NULL);
    /* unparsable lines are counted, log lines ignored; stats carry the count and patches_skipped */
    lines = m.n_lines;
    dev_send(&d, &m, "{\"t\":\"cmd\"");
    yf_device_feed(&d, (const uint8_t *)"plain log line\n", 15);
    CHECK(m.n_lines == lines && yf_device_bad_lines(&d) == 1);
    yf_stats_t st;
    memset(&st, 0, sizeof st);
    st.arena_where = "psram";
    st.patches_skipped = 7;
    char sl[512];
    CHECK(yf_device_stats(&d, &st, sl, sizeof sl) > 0);
    CHECK(strstr(sl, "\"bad_lines\":1,") != NULL && strstr(sl, "\"patches_skipped\":7}") != NULL);
    /* source resets the seq tracking: any first seq is taken */
    dev_send(&d, &m, "{\"t\":\"cmd\",\"v\":1,\"id\":15,\"cmd\":\"source\",\"src\":\"host\"}");
    r = dev_send(&d, &m, "{\"t\":\"cmd\",\"v\":1,\"id\":16,\"cmd\":\"pcm\",\"seq\":100,\"d\":\"AAA=\"}");
    CHECK(strstr(r, "\"ok\":true") != NULL);
    r = dev_send(&d, &m, "{\"t\":\"cmd\",\"v\":1,\"id\":17,\"cmd\":\"reset\"}");
    CHECK(strstr(r, "\"ok\":true") != NULL && m.resets == 1);

    /* deferred replies: a patch with a gap, a bench with nearest-rank percentiles and per-op means */
    yf_patch_req_t req = {.id = 20, .seq = 4, .seq_gap = true, .expected = 2};
    int8_t scores[3] = {1, -2, 3};
    char pl[256];
    CHECK(yf_device_patch_reply(pl, sizeof pl, &req, scores, 3, 99) > 0);
    CHECK(strcmp(pl, "@yf {\"t\":\"reply\",\"v\":1,\"id\":20,\"cmd\":\"patch\",\"ok\":false,\"err\":\"E_SEQ\","
                     "\"msg\":\"patch seq gap\",\"expected\":2,\"seq\":4,\"q\":\"Af4D\",\"invoke_us\":99}\n") == 0);
    uint32_t us[10] = {10, 1, 9, 2, 8, 3, 7, 4, 6, 5};
    yf_bench_op_t ops[1] = {{"CONV_2D", 1000}};
    yf_jw_t w;
    char bl[512];
    yf_device_bench_reply(&w, bl, sizeof bl, 21, us, 10, ops, 1);
    CHECK(yf_jw_end(&w) > 0);
    CHECK(strstr(bl, "\"n\":10,\"invoke_us\":{\"mean\":5.5,\"min\":1,\"max\":10,\"p50\":5,\"p90\":9,\"p99\":10,") != NULL);
    CHECK(strstr(bl, "\"ops\":[{\"op\":\"CONV_2D\",\"us\":100}]") != NULL);
}

int main(void)
{
    test_fft();
    test_frontend_streaming();
    test_patch();
    test_quant();
    test_detect();
    test_proto_basics();
    test_fuzz();
    test_device();
    printf("yf_core C tests: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
