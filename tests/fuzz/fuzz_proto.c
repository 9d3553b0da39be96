/* libFuzzer harness for yf_core's serial-protocol decoders (firmware/components/yf_core/src/yf_proto.c).
 *
 * One input exercises every decoder a host can reach over the serial line:
 *   - the line assembler (yf_line_feed), fed in chunks whose sizes come from the input itself, and every
 *     `@yf ` line it returns through the command decoder (yf_proto_parse_cmd), as yf_tasks.c does;
 *   - the command decoder on the whole input as one line's JSON;
 *   - strict base64 (yf_b64_decode), whose output must re-encode to the same text;
 *   - the event writer (hello, stats, det, timing, scores/patch, replies, bench, free-form members and
 *     nesting) with values, strings and buffer sizes taken from the input: every line it writes must be one
 *     line within the limit and the buffer, with control bytes escaped.
 * Besides the sanitizers' checks, the decoders' promises are asserted (abort on a broken one): counters that
 * add up, lengths within their buffers, arguments within the ranges the protocol gives them.
 *
 * Built with clang -fsanitize=fuzzer,address,undefined by tests/fuzz/run.py, or with gcc and
 * tests/fuzz/standalone_main.c where clang is missing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yf_proto.h"

#define CHECK(cond)                                                                                     \
    do {                                                                                                \
        if (!(cond)) {                                                                                  \
            fprintf(stderr, "fuzz_proto: broken promise: %s (%s:%d)\n", #cond, __FILE__, __LINE__);    \
            abort();                                                                                    \
        }                                                                                               \
    } while (0)

static uint8_t s_payload[YF_PROTO_PAYLOAD_MAX];

static void check_cmd(yf_parse_status_t st, const yf_cmd_t *c)
{
    CHECK(st == YF_PARSE_OK || st == YF_PARSE_BAD || st == YF_PARSE_UNKNOWN_CMD || st == YF_PARSE_ARG);
    if (st == YF_PARSE_BAD) {
        return;
    }
    CHECK(memchr(c->name, '\0', sizeof c->name) != NULL);
    if (st != YF_PARSE_OK) {
        CHECK(c->err_msg != NULL && strlen(c->err_msg) > 0);
        return;
    }
    CHECK(c->kind >= YF_CMD_PING && c->kind <= YF_CMD_RESET);
    switch (c->kind) {
    case YF_CMD_SOURCE:
        CHECK(c->src == YF_SRC_MIC || c->src == YF_SRC_HOST);
        break;
    case YF_CMD_PCM: {
        CHECK(c->data == s_payload && c->data_len >= 2 && c->data_len % 2 == 0 &&
              c->data_len <= 2 * YF_PROTO_MAX_PCM_SAMPLES);
        static int16_t pcm[YF_PROTO_MAX_PCM_SAMPLES];
        size_t n = yf_pcm_from_le(c->data, c->data_len, pcm);
        CHECK(n == c->data_len / 2 && pcm[n - 1] == (int16_t)(c->data[2 * n - 2] | c->data[2 * n - 1] << 8));
        break;
    }
    case YF_CMD_PATCH:
        CHECK(c->data == s_payload && c->data_len == YF_PROTO_PATCH_BYTES);
        break;
    case YF_CMD_DETECTOR:
        CHECK(c->n_classes <= YF_PROTO_MAX_CLASSES);
        if (c->present & YF_ARG_DETECTOR_THRESHOLD) {
            /* within 0..1, and never -0: the Python decoder reads -0 as 0 (issue 12) */
            CHECK(c->threshold >= 0.0f && c->threshold <= 1.0f && !__builtin_signbit(c->threshold));
        }
        if (c->present & YF_ARG_DETECTOR_WINDOW) {
            CHECK(c->window >= YF_PROTO_DETECTOR_WINDOW_MIN && c->window <= YF_PROTO_DETECTOR_WINDOW_MAX);
        }
        if (c->present & YF_ARG_DETECTOR_MIN_COUNT) {
            CHECK(c->min_count >= YF_PROTO_DETECTOR_MIN_COUNT_MIN && c->min_count <= YF_PROTO_DETECTOR_MIN_COUNT_MAX);
        }
        if (c->present & YF_ARG_DETECTOR_REFRACTORY_MS) {
            CHECK(c->refractory_ms <= YF_PROTO_DETECTOR_REFRACTORY_MS_MAX);
        }
        break;
    case YF_CMD_BENCH:
        CHECK(!(c->present & YF_ARG_BENCH_N) || (c->n >= YF_PROTO_BENCH_N_MIN && c->n <= YF_PROTO_BENCH_N_MAX));
        break;
    default:
        break;
    }
}

static void lines(const uint8_t *data, size_t size)
{
    static yf_line_asm_t a; /* 12 KiB: not on the stack */
    yf_line_init(&a);
    size_t off = 0, k = 0, returned = 0;
    uint32_t bad_parsed = 0;
    while (off < size) {
        size_t chunk = 1 + (size_t)data[k++ % size] % 97; /* feeds of 1..97 bytes, like USB packets */
        if (chunk > size - off) {
            chunk = size - off;
        }
        size_t used = 0;
        while (used < chunk) {
            yf_line_t ln;
            size_t n = yf_line_feed(&a, data + off + used, chunk - used, &ln);
            CHECK(n >= 1 && n <= chunk - used);
            used += n;
            if (ln.kind == YF_LINE_NONE) {
                continue;
            }
            returned++;
            CHECK(ln.len < YF_PROTO_MAX_LINE && ln.text[ln.len] == '\0');
            if (ln.kind == YF_LINE_PROTO) {
                CHECK(ln.json == ln.text + YF_PROTO_PREFIX_LEN && ln.json_len + YF_PROTO_PREFIX_LEN == ln.len);
                yf_cmd_t c;
                yf_parse_status_t st = yf_proto_parse_cmd(ln.json, ln.json_len, &c, s_payload, sizeof s_payload);
                check_cmd(st, &c);
                if (st == YF_PARSE_BAD) {
                    yf_line_bad(&a);
                    bad_parsed++;
                }
            }
        }
        off += chunk;
    }
    CHECK(a.proto_lines + a.log_lines == returned);
    CHECK(a.bad_lines == a.long_lines + bad_parsed);
}

static void base64(const uint8_t *data, size_t size)
{
    uint8_t out[512];
    size_t n = 0;
    if (yf_b64_decode((const char *)data, size, out, sizeof out, &n) == 0) {
        char again[700];
        CHECK(n <= sizeof out && yf_b64_len(n) == size);
        size_t m = yf_b64_encode(out, n, again, sizeof again);
        CHECK(m == size && memcmp(again, data, size) == 0); /* strict: one text per byte string */
    }
}

static void writer(const uint8_t *data, size_t size)
{
    static char msg[YF_PROTO_MAX_LINE + 1];
    static char line[YF_PROTO_MAX_LINE + 64];
    size_t n = size < YF_PROTO_MAX_LINE ? size : YF_PROTO_MAX_LINE;
    memcpy(msg, data, n);
    msg[n] = '\0';
    size_t len = yf_proto_err(line, sizeof line, "E_PARSE", msg);
    if (len) {
        CHECK(len <= YF_PROTO_MAX_LINE && line[len - 1] == '\n' && line[len] == '\0');
        CHECK(memcmp(line, YF_PROTO_PREFIX, YF_PROTO_PREFIX_LEN) == 0 && memchr(line, '\n', len - 1) == NULL);
    }
}

/* ---- the event writer, driven by the input: values, strings, nesting and buffer sizes ---- */
typedef struct {
    const uint8_t *d;
    size_t n, i;
} src_t;

static uint32_t u32(src_t *s)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        v = v << 8 | (s->i < s->n ? s->d[s->i++] : 0u);
    }
    return v;
}

static double f64(src_t *s)
{
    uint64_t v = (uint64_t)u32(s) << 32 | u32(s);
    double x;
    memcpy(&x, &v, sizeof x);
    return x;
}

static const char *str(src_t *s, char *buf, size_t cap)
{
    size_t len = s->i < s->n ? s->d[s->i++] % cap : 0;
    size_t k = 0;
    for (; k < len && s->i < s->n; k++) {
        buf[k] = (char)(s->d[s->i++] ? s->d[s->i - 1] : 'x'); /* C strings: no NUL inside */
    }
    buf[k] = '\0';
    return buf;
}

/* A line the writer produced: within the limit and the buffer, one line, the prefix, control bytes escaped. */
static void check_line(const char *line, size_t len, size_t cap)
{
    if (len == 0) {
        return; /* refused: did not fit, or would be over the limit */
    }
    CHECK(len <= YF_PROTO_MAX_LINE && len < cap && line[len] == '\0' && line[len - 1] == '\n');
    CHECK(memcmp(line, YF_PROTO_PREFIX, YF_PROTO_PREFIX_LEN) == 0 && line[YF_PROTO_PREFIX_LEN] == '{');
    for (size_t i = 0; i + 1 < len; i++) {
        CHECK((unsigned char)line[i] >= 0x20); /* newlines, tabs, NULs inside a string are escaped */
    }
    CHECK(line[len - 2] == '}');
}

static void writers(const uint8_t *data, size_t size)
{
    static char line[YF_PROTO_MAX_LINE + 256];
    static char a[300], b[300], c[300], e[64];
    src_t s = {data, size, 0};
    size_t cap = 8 + u32(&s) % (sizeof line - 8);
    size_t len;

    yf_hello_t h = {str(&s, a, sizeof a), str(&s, b, 16), str(&s, c, 80), "host", "chip", u32(&s), u32(&s),
                    (float)f64(&s), (float)f64(&s), (int32_t)u32(&s), (int32_t)u32(&s), u32(&s), u32(&s),
                    (u32(&s) & 1) ? "psram" : "internal", u32(&s), u32(&s)};
    len = yf_proto_hello(line, cap, &h);
    check_line(line, len, cap);

    const char *names[4] = {a, b, "infer", str(&s, e, sizeof e)};
    uint32_t hwm[4] = {u32(&s), u32(&s), u32(&s), u32(&s)};
    yf_stats_t st = {u32(&s), u32(&s), u32(&s), u32(&s), u32(&s), u32(&s), u32(&s), u32(&s), names, hwm,
                     u32(&s) % 5, u32(&s), u32(&s), "psram", u32(&s)};
    len = yf_proto_stats(line, cap, &st);
    check_line(line, len, cap);

    len = yf_proto_det(line, cap, (uint16_t)u32(&s), str(&s, a, sizeof a), (float)f64(&s), u32(&s), u32(&s));
    check_line(line, len, cap);
    len = yf_proto_timing(line, cap, u32(&s), u32(&s), u32(&s), u32(&s));
    check_line(line, len, cap);
    size_t nq = u32(&s) % 9000, left = size - (s.i < size ? s.i : size);
    len = yf_proto_data(line, cap, (u32(&s) & 1) ? "scores" : "patch", u32(&s), u32(&s), (const int8_t *)data,
                        nq < size ? nq : size);
    check_line(line, len, cap);
    (void)left;
    len = yf_proto_reply_err(line, cap, u32(&s), str(&s, a, sizeof a), "E_ARG", str(&s, b, sizeof b));
    check_line(line, len, cap);

    uint32_t us[64];
    size_t nb = u32(&s) % 65;
    for (size_t i = 0; i < nb; i++) {
        us[i] = u32(&s) % 10000000u;
    }
    yf_bench_summary_t sum;
    yf_bench_summarize(us, nb, &sum);
    CHECK(sum.n == nb && (nb == 0 || (sum.min <= sum.p50 && sum.p50 <= sum.p90 && sum.p90 <= sum.p99 &&
                                      sum.p99 <= sum.max && sum.mean >= sum.min && sum.mean <= sum.max)));
    yf_jw_t w;
    yf_proto_reply_begin(&w, line, cap, u32(&s), "bench", true);
    yf_proto_bench_fields(&w, &sum);
    len = yf_jw_end(&w);
    check_line(line, len, cap);

    /* free-form: any sequence of members, nesting past the writer's depth, unbalanced closes */
    yf_jw_begin(&w, line, cap, str(&s, e, sizeof e));
    for (int k = 0; k < 40 && s.i < s.n; k++) {
        const char *key = (u32(&s) & 3) ? str(&s, c, 40) : NULL;
        switch (u32(&s) % 9) {
        case 0: yf_jw_str(&w, key, str(&s, a, sizeof a)); break;
        case 1: yf_jw_int(&w, key, (int64_t)((uint64_t)u32(&s) << 32 | u32(&s))); break;
        case 2: yf_jw_uint(&w, key, (uint64_t)u32(&s) << 32 | u32(&s)); break;
        case 3: yf_jw_num(&w, key, f64(&s)); break;
        case 4: yf_jw_bool(&w, key, u32(&s) & 1); break;
        case 5: yf_jw_b64(&w, key, data, u32(&s) % (size + 1)); break;
        case 6: yf_jw_obj(&w, key); break;
        case 7: yf_jw_arr(&w, key); break;
        default: yf_jw_close(&w); break;
        }
    }
    len = yf_jw_end(&w);
    check_line(line, len, cap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    lines(data, size);
    yf_cmd_t c;
    check_cmd(yf_proto_parse_cmd((const char *)data, size, &c, s_payload, sizeof s_payload), &c);
    base64(data, size);
    writer(data, size);
    writers(data, size);
    return 0;
}
