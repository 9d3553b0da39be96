/* The board's command handling, shared by the firmware and the virtual board: see yf_device.h. */
#include "yf_device.h"

#include <stdio.h>
#include <string.h>

static const char *const SRC_NAMES[] = YF_PROTO_SRC_NAMES;

static const char *src_name(yf_src_t s)
{
    return (size_t)s < sizeof(SRC_NAMES) / sizeof(SRC_NAMES[0]) ? SRC_NAMES[s] : "?";
}

void yf_device_init(yf_device_t *d, const yf_device_ops_t *ops, void *ctx, yf_src_t src)
{
    memset(d, 0, sizeof(*d));
    d->ops = ops;
    d->ctx = ctx;
    d->src = src;
    yf_line_init(&d->lines);
}

yf_src_t yf_device_src(const yf_device_t *d)
{
    return d->src;
}

uint32_t yf_device_bad_lines(const yf_device_t *d)
{
    return d->lines.bad_lines;
}

static void emit(yf_device_t *d, size_t len)
{
    d->ops->emit(d->ctx, d->out, len);
}

static void reply_err(yf_device_t *d, const yf_cmd_t *c, const char *code, const char *msg)
{
    emit(d, yf_proto_reply_err(d->out, sizeof d->out, c->id, c->name, code, msg));
}

static void reply_op_err(yf_device_t *d, const yf_cmd_t *c, const yf_op_err_t *e)
{
    reply_err(d, c, e->code ? e->code : YF_E_INTERNAL, e->msg ? e->msg : "the board failed");
}

/* Track a host stream's seq: returns true on a gap and sets *expected (the first seq is taken as it comes). */
static bool seq_gap(uint32_t seq, uint32_t last, bool seen, uint32_t *expected)
{
    *expected = seen ? last + 1u : seq;
    return seq != *expected;
}

static void cmd_ok(yf_device_t *d, const yf_cmd_t *c)
{
    yf_jw_t w;
    yf_proto_reply_begin(&w, d->out, sizeof d->out, c->id, c->name, true);
    emit(d, yf_jw_end(&w));
}

static void cmd_info(yf_device_t *d, const yf_cmd_t *c)
{
    yf_hello_t h;
    yf_op_err_t e = {0};
    memset(&h, 0, sizeof h);
    if (d->ops->hello(d->ctx, &h, &e) != 0) {
        reply_op_err(d, c, &e);
        return;
    }
    h.src = src_name(d->src);
    yf_jw_t w;
    yf_proto_reply_begin(&w, d->out, sizeof d->out, c->id, c->name, true);
    yf_proto_hello_fields(&w, &h);
    if (d->ops->extra) {
        d->ops->extra(d->ctx, "info", &w);
    }
    emit(d, yf_jw_end(&w));
}

static void cmd_source(yf_device_t *d, const yf_cmd_t *c)
{
    yf_op_err_t e = {0};
    if (d->ops->source(d->ctx, (yf_src_t)c->src, &e) != 0) {
        reply_op_err(d, c, &e);
        return;
    }
    d->src = (yf_src_t)c->src;
    d->pcm_seen = d->patch_seen = false; /* both host streams start again */
    yf_jw_t w;
    yf_proto_reply_begin(&w, d->out, sizeof d->out, c->id, c->name, true);
    yf_jw_str(&w, "src", src_name(d->src));
    emit(d, yf_jw_end(&w));
}

static void cmd_pcm(yf_device_t *d, const yf_cmd_t *c)
{
    if (d->src != YF_SRC_HOST) {
        reply_err(d, c, YF_E_BUSY, "source is mic: send {\"cmd\":\"source\",\"src\":\"host\"} first");
        return;
    }
    uint32_t expected;
    const bool gap = seq_gap(c->seq, d->pcm_last, d->pcm_seen, &expected);
    const size_t n = yf_pcm_from_le(c->data, c->data_len, d->pcm);
    size_t accepted = 0;
    yf_op_err_t e = {0};
    if (d->ops->pcm(d->ctx, d->pcm, n, &accepted, &e) != 0) {
        reply_op_err(d, c, &e);
        return;
    }
    d->pcm_last = c->seq;
    d->pcm_seen = true;
    yf_jw_t w;
    yf_proto_reply_begin(&w, d->out, sizeof d->out, c->id, c->name, !gap);
    if (gap) {
        yf_jw_str(&w, "err", YF_E_SEQ);
        yf_jw_str(&w, "msg", "pcm seq gap");
        yf_jw_uint(&w, "expected", expected);
    }
    yf_jw_uint(&w, "seq", c->seq);
    yf_jw_uint(&w, "accepted", accepted);
    emit(d, yf_jw_end(&w));
}

static void cmd_patch(yf_device_t *d, const yf_cmd_t *c)
{
    yf_patch_req_t r = {.id = c->id, .seq = c->seq, .q = (const int8_t *)c->data};
    r.seq_gap = seq_gap(c->seq, d->patch_last, d->patch_seen, &r.expected);
    yf_op_err_t e = {0};
    if (d->ops->patch(d->ctx, &r, &e) != 0) {
        reply_op_err(d, c, &e);
        return;
    }
    d->patch_last = c->seq;
    d->patch_seen = true;
}

static void cmd_stream(yf_device_t *d, const yf_cmd_t *c)
{
    d->ops->stream(d->ctx, c->scores, c->patches);
    yf_jw_t w;
    yf_proto_reply_begin(&w, d->out, sizeof d->out, c->id, c->name, true);
    yf_jw_bool(&w, "scores", c->scores);
    yf_jw_bool(&w, "patches", c->patches);
    emit(d, yf_jw_end(&w));
}

static void cmd_detector(yf_device_t *d, const yf_cmd_t *c)
{
    yf_detect_config_t cfg;
    uint32_t n_labels = 0;
    yf_op_err_t e = {0};
    if (d->ops->detector_get(d->ctx, &cfg, &n_labels, &e) != 0) {
        reply_op_err(d, c, &e);
        return;
    }
    if (c->present & YF_ARG_DETECTOR_CLASSES) {
        cfg.n_classes = c->n_classes;
        memcpy(cfg.classes, c->classes, c->n_classes * sizeof c->classes[0]);
    }
    if (c->present & YF_ARG_DETECTOR_THRESHOLD) {
        cfg.threshold = c->threshold;
    }
    if (c->present & YF_ARG_DETECTOR_WINDOW) {
        cfg.window = c->window;
    }
    if (c->present & YF_ARG_DETECTOR_MIN_COUNT) {
        cfg.min_count = c->min_count;
    }
    if (c->present & YF_ARG_DETECTOR_REFRACTORY_MS) {
        cfg.refractory_ms = c->refractory_ms;
    }
    /* The decoder checked each field's range; what is left is the model's label count. */
    if (yf_detect_config_check(&cfg, n_labels) != 0) {
        snprintf(d->msg, sizeof d->msg, "classes must be indices below the model's %u labels", (unsigned)n_labels);
        reply_err(d, c, YF_E_ARG, d->msg);
        return;
    }
    if (d->ops->detector_set(d->ctx, &cfg, &e) != 0) {
        reply_op_err(d, c, &e);
        return;
    }
    yf_jw_t w;
    yf_proto_reply_begin(&w, d->out, sizeof d->out, c->id, c->name, true);
    yf_jw_arr(&w, "classes");
    for (uint32_t i = 0; i < cfg.n_classes; ++i) {
        yf_jw_uint(&w, NULL, cfg.classes[i]);
    }
    yf_jw_close(&w);
    yf_jw_num(&w, "threshold", cfg.threshold);
    yf_jw_uint(&w, "window", cfg.window);
    yf_jw_uint(&w, "min_count", cfg.min_count);
    yf_jw_uint(&w, "refractory_ms", cfg.refractory_ms);
    emit(d, yf_jw_end(&w));
}

static void cmd_bench(yf_device_t *d, const yf_cmd_t *c)
{
    const uint32_t n = (c->present & YF_ARG_BENCH_N) ? c->n : YF_PROTO_BENCH_N_DEFAULT;
    yf_op_err_t e = {0};
    if (d->ops->bench(d->ctx, c->id, n, &e) != 0) {
        reply_op_err(d, c, &e);
    }
}

void yf_device_command(yf_device_t *d, const char *json, size_t len)
{
    yf_cmd_t c;
    switch (yf_proto_parse_cmd(json, len, &c, d->payload, sizeof d->payload)) {
    case YF_PARSE_BAD:
        yf_line_bad(&d->lines);
        return;
    case YF_PARSE_UNKNOWN_CMD:
        reply_err(d, &c, YF_E_UNKNOWN_CMD, c.err_msg);
        return;
    case YF_PARSE_ARG:
        reply_err(d, &c, YF_E_ARG, c.err_msg);
        return;
    case YF_PARSE_OK:
        break;
    }
    switch (c.kind) {
    case YF_CMD_PING:
        cmd_ok(d, &c);
        break;
    case YF_CMD_INFO:
        cmd_info(d, &c);
        break;
    case YF_CMD_SOURCE:
        cmd_source(d, &c);
        break;
    case YF_CMD_PCM:
        cmd_pcm(d, &c);
        break;
    case YF_CMD_PATCH:
        cmd_patch(d, &c);
        break;
    case YF_CMD_STREAM:
        cmd_stream(d, &c);
        break;
    case YF_CMD_DETECTOR:
        cmd_detector(d, &c);
        break;
    case YF_CMD_BENCH:
        cmd_bench(d, &c);
        break;
    case YF_CMD_RESET:
        cmd_ok(d, &c);
        d->ops->reset(d->ctx);
        break;
    case YF_CMD_NONE:
        break;
    }
}

void yf_device_feed(yf_device_t *d, const uint8_t *data, size_t n)
{
    size_t off = 0;
    while (off < n) {
        yf_line_t line;
        off += yf_line_feed(&d->lines, data + off, n - off, &line);
        if (line.kind == YF_LINE_PROTO) {
            yf_device_command(d, line.json, line.json_len);
        }
    }
}

size_t yf_device_hello(yf_device_t *d, char *buf, size_t cap)
{
    yf_hello_t h;
    yf_op_err_t e = {0};
    memset(&h, 0, sizeof h);
    if (d->ops->hello(d->ctx, &h, &e) != 0) {
        return 0;
    }
    h.src = src_name(d->src);
    yf_jw_t w;
    yf_jw_begin(&w, buf, cap, "hello");
    yf_proto_hello_fields(&w, &h);
    if (d->ops->extra) {
        d->ops->extra(d->ctx, "hello", &w);
    }
    const size_t len = yf_jw_end(&w);
    d->ops->emit(d->ctx, buf, len);
    return len;
}

size_t yf_device_stats(yf_device_t *d, yf_stats_t *s, char *buf, size_t cap)
{
    s->bad_lines = d->lines.bad_lines;
    yf_jw_t w;
    yf_proto_stats_begin(&w, buf, cap, s);
    if (d->ops->extra) {
        d->ops->extra(d->ctx, "stats", &w);
    }
    const size_t len = yf_jw_end(&w);
    d->ops->emit(d->ctx, buf, len);
    return len;
}

size_t yf_device_patch_reply(char *buf, size_t cap, const yf_patch_req_t *req, const int8_t *scores, size_t n,
                             uint32_t invoke_us)
{
    yf_jw_t w;
    yf_proto_reply_begin(&w, buf, cap, req->id, "patch", !req->seq_gap);
    if (req->seq_gap) {
        yf_jw_str(&w, "err", YF_E_SEQ);
        yf_jw_str(&w, "msg", "patch seq gap");
        yf_jw_uint(&w, "expected", req->expected);
    }
    yf_jw_uint(&w, "seq", req->seq);
    yf_jw_b64(&w, "q", scores, n);
    yf_jw_uint(&w, "invoke_us", invoke_us);
    return yf_jw_end(&w);
}

void yf_device_bench_reply(yf_jw_t *w, char *buf, size_t cap, uint32_t id, uint32_t *us, uint32_t n,
                           const yf_bench_op_t *ops, size_t n_ops)
{
    yf_bench_summary_t s;
    yf_bench_summarize(us, n, &s);
    yf_proto_reply_begin(w, buf, cap, id, "bench", true);
    yf_jw_uint(w, "n", n);
    yf_proto_bench_fields(w, &s);
    yf_jw_arr(w, "ops"); /* mean time per invoke of each op type, summed over its layers */
    for (size_t i = 0; i < n_ops; ++i) {
        yf_jw_obj(w, NULL);
        yf_jw_str(w, "op", ops[i].op);
        yf_jw_uint(w, "us", n ? ops[i].us / n : 0);
        yf_jw_close(w);
    }
    yf_jw_close(w);
}
