/* The serial protocol, device side: the command decoder (walking the generated argument table) and the event
 * builders. See docs/protocol.md, yf_proto.h and yf_proto_spec.h. */
#include "yf_proto.h"

#include <stddef.h>
#include <string.h>

#include "yf_frontend.h"
#include "yf_patch.h"

/* ------------------------------------------------------------------ commands */

static const char *const CMD_NAMES[] = {
    "",
#define YF_CMD_NAME_ROW(kind, name) name,
    YF_PROTO_COMMANDS(YF_CMD_NAME_ROW)
#undef YF_CMD_NAME_ROW
};

const char *yf_proto_cmd_name(yf_cmd_kind_t k)
{
    return (size_t)k < sizeof(CMD_NAMES) / sizeof(CMD_NAMES[0]) ? CMD_NAMES[k] : "";
}

/* One row of YF_PROTO_ARGS: where the value goes in yf_cmd_t and the rule it must pass. */
typedef struct {
    yf_cmd_kind_t kind;
    const char *name;
    yf_arg_type_t type;
    uint32_t bit;
    bool required;
    double lo, hi;       /* value range; B64: items; INT_ARRAY: each element */
    uint32_t item_bytes; /* B64 */
    uint32_t max_len;    /* INT_ARRAY */
    size_t off, count_off;
    const char *msg;
} arg_spec_t;

static const arg_spec_t ARGS[] = {
#define YF_ARG_ROW(kind, name, type, bit, req, lo, hi, item, max_len, field, count_field, msg)                  \
    {YF_CMD_##kind, name, type, bit, req, lo, hi, item, max_len, offsetof(yf_cmd_t, field),                    \
     offsetof(yf_cmd_t, count_field), msg},
    YF_PROTO_ARGS(YF_ARG_ROW)
#undef YF_ARG_ROW
};

static const char *const SRC_NAMES[] = YF_PROTO_SRC_NAMES;

static void *field_at(yf_cmd_t *cmd, size_t off)
{
    return (char *)cmd + off;
}

/* Check one present argument against its row and store it; false if it breaks the rule. */
static bool take_arg(const yf_json_t *p, const yf_jtok_t *t, const arg_spec_t *a, yf_cmd_t *cmd, uint8_t *payload,
                     size_t cap)
{
    int64_t v;
    double x;
    size_t n = 0;
    switch (a->type) {
    case YF_ARG_ENUM:
        /* Only the source command has an enum argument; its names are the generated YF_PROTO_SRC_NAMES. */
        for (uint32_t i = 0; i < sizeof(SRC_NAMES) / sizeof(SRC_NAMES[0]); i++) {
            if (yf_json_str_eq(p, t, SRC_NAMES[i])) {
                *(uint32_t *)field_at(cmd, a->off) = i;
                return true;
            }
        }
        return false;
    case YF_ARG_INT:
        if (!yf_json_int(p, t, (int64_t)a->lo, (int64_t)a->hi, &v)) {
            return false;
        }
        *(uint32_t *)field_at(cmd, a->off) = (uint32_t)v;
        return true;
    case YF_ARG_NUM:
        if (!yf_json_num(p, t, &x) || !(x >= a->lo && x <= a->hi)) {
            return false;
        }
        *(float *)field_at(cmd, a->off) = x == 0.0 ? 0.0f : (float)x; /* -0 is 0, as the Python decoder reads it */
        return true;
    case YF_ARG_BOOL:
        return yf_json_bool(t, (bool *)field_at(cmd, a->off));
    case YF_ARG_B64:
        if (!yf_json_b64(p, t, payload, cap, &n) || n % a->item_bytes != 0 || n < (size_t)a->lo * a->item_bytes ||
            n > (size_t)a->hi * a->item_bytes) {
            return false;
        }
        *(const uint8_t **)field_at(cmd, a->off) = payload;
        *(size_t *)field_at(cmd, a->count_off) = n;
        return true;
    case YF_ARG_INT_ARRAY: {
        if (t->type != YF_J_ARR || t->count > a->max_len) {
            return false;
        }
        uint16_t *out = (uint16_t *)field_at(cmd, a->off);
        const yf_jtok_t *e = t + 1;
        for (unsigned i = 0; i < t->count; i++, e = yf_json_next(p, e)) {
            if (!yf_json_int(p, e, (int64_t)a->lo, (int64_t)a->hi, &v)) {
                return false;
            }
            out[i] = (uint16_t)v;
        }
        *(uint32_t *)field_at(cmd, a->count_off) = t->count;
        return true;
    }
    }
    return false;
}

static yf_parse_status_t parse_args(const yf_json_t *p, yf_cmd_t *cmd, uint8_t *payload, size_t cap)
{
    for (size_t i = 0; i < sizeof(ARGS) / sizeof(ARGS[0]); i++) {
        const arg_spec_t *a = &ARGS[i];
        if (a->kind != cmd->kind) {
            continue;
        }
        const yf_jtok_t *t = yf_json_member(p, a->name);
        if (t == NULL && !a->required) {
            continue;
        }
        if (t == NULL || !take_arg(p, t, a, cmd, payload, cap)) {
            cmd->err_msg = a->msg;
            return YF_PARSE_ARG;
        }
        cmd->present |= a->bit;
    }
    return YF_PARSE_OK;
}

yf_parse_status_t yf_proto_parse_cmd(const char *json, size_t len, yf_cmd_t *cmd, uint8_t *payload,
                                     size_t payload_cap)
{
    /* The parser state holds 128 tokens (2 KiB): static would not be reentrant, so it lives on the stack. */
    yf_json_t p;
    memset(cmd, 0, sizeof(*cmd));
    if (!yf_json_parse(&p, json, len)) {
        return YF_PARSE_BAD;
    }
    int64_t v;
    const yf_jtok_t *t = yf_json_member(&p, "t");
    if (!t || !yf_json_str_eq(&p, t, "cmd") ||
        !yf_json_int(&p, yf_json_member(&p, "v"), YF_PROTO_VERSION, YF_PROTO_VERSION, &v)) {
        return YF_PARSE_BAD;
    }
    if (!yf_json_int(&p, yf_json_member(&p, "id"), 0, UINT32_MAX, &v)) {
        return YF_PARSE_BAD;
    }
    cmd->id = (uint32_t)v;
    const yf_jtok_t *name = yf_json_member(&p, "cmd");
    if (!name || name->type != YF_J_STR) {
        return YF_PARSE_BAD;
    }
    yf_json_copy_ascii(&p, name, cmd->name, sizeof(cmd->name));
    for (size_t k = 1; k < sizeof(CMD_NAMES) / sizeof(CMD_NAMES[0]); k++) {
        if (yf_json_str_eq(&p, name, CMD_NAMES[k])) {
            cmd->kind = (yf_cmd_kind_t)k;
            return parse_args(&p, cmd, payload, payload_cap);
        }
    }
    cmd->err_msg = "unknown command";
    return YF_PARSE_UNKNOWN_CMD;
}

size_t yf_pcm_from_le(const uint8_t *bytes, size_t nbytes, int16_t *out)
{
    size_t n = nbytes / 2;
    for (size_t i = 0; i < n; i++) {
        out[i] = (int16_t)(uint16_t)(bytes[2 * i] | (bytes[2 * i + 1] << 8));
    }
    return n;
}

/* ------------------------------------------------------------------ events */

static void arena_fields(yf_jw_t *w, uint32_t size, uint32_t used, const char *where)
{
    yf_jw_obj(w, "arena");
    yf_jw_uint(w, "size", size);
    yf_jw_uint(w, "used", used);
    yf_jw_str(w, "where", where);
    yf_jw_close(w);
}

void yf_proto_hello_fields(yf_jw_t *w, const yf_hello_t *h)
{
    yf_jw_str(w, "fw", h->fw);
    yf_jw_int(w, "proto", YF_PROTO_VERSION);
    yf_jw_str(w, "board", h->board);
    yf_jw_str(w, "model_sha256", h->model_sha256);
    yf_jw_uint(w, "model_bytes", h->model_bytes);
    yf_jw_uint(w, "labels", h->labels);
    yf_jw_obj(w, "frontend");
    yf_jw_int(w, "sr", YF_SAMPLE_RATE);
    yf_jw_int(w, "win", YF_FRAME_LEN);
    yf_jw_int(w, "hop", YF_FRAME_HOP);
    yf_jw_int(w, "fft", YF_FFT_LEN);
    yf_jw_int(w, "mel", YF_NUM_MEL);
    yf_jw_int(w, "patch", YF_PATCH_FRAMES);
    yf_jw_int(w, "patch_hop", YF_PATCH_HOP);
    yf_jw_num(w, "log_offset", 0.001); /* YF_LOG_OFFSET as the decimal it stands for, not its float value */
    yf_jw_close(w);
    yf_jw_obj(w, "input");
    yf_jw_num(w, "scale", h->in_scale);
    yf_jw_int(w, "zp", h->in_zp);
    yf_jw_close(w);
    yf_jw_obj(w, "output");
    yf_jw_num(w, "scale", h->out_scale);
    yf_jw_int(w, "zp", h->out_zp);
    yf_jw_close(w);
    arena_fields(w, h->arena_size, h->arena_used, h->arena_where);
    yf_jw_uint(w, "heap_free", h->heap_free);
    yf_jw_uint(w, "psram_free", h->psram_free);
    yf_jw_str(w, "src", h->src);
    yf_jw_str(w, "clock", h->clock);
}

size_t yf_proto_hello(char *buf, size_t cap, const yf_hello_t *h)
{
    yf_jw_t w;
    yf_jw_begin(&w, buf, cap, "hello");
    yf_proto_hello_fields(&w, h);
    return yf_jw_end(&w);
}

void yf_proto_stats_begin(yf_jw_t *w, char *buf, size_t cap, const yf_stats_t *s)
{
    yf_jw_begin(w, buf, cap, "stats");
    yf_jw_uint(w, "uptime_ms", s->uptime_ms);
    yf_jw_uint(w, "inferences", s->inferences);
    yf_jw_uint(w, "dropped_samples", s->dropped_samples);
    yf_jw_uint(w, "bad_lines", s->bad_lines);
    yf_jw_uint(w, "heap_free", s->heap_free);
    yf_jw_uint(w, "heap_min", s->heap_min);
    yf_jw_uint(w, "psram_free", s->psram_free);
    yf_jw_uint(w, "psram_min", s->psram_min);
    yf_jw_obj(w, "stack_hwm");
    for (size_t i = 0; i < s->n_tasks; i++) {
        yf_jw_uint(w, s->task_names[i], s->task_hwm[i]);
    }
    yf_jw_close(w);
    arena_fields(w, s->arena_size, s->arena_used, s->arena_where);
    yf_jw_uint(w, "patches_skipped", s->patches_skipped);
}

size_t yf_proto_stats(char *buf, size_t cap, const yf_stats_t *s)
{
    yf_jw_t w;
    yf_proto_stats_begin(&w, buf, cap, s);
    return yf_jw_end(&w);
}

size_t yf_proto_det(char *buf, size_t cap, uint16_t cls, const char *label, float score, uint32_t ts_ms,
                    uint32_t patch)
{
    yf_jw_t w;
    yf_jw_begin(&w, buf, cap, "det");
    yf_jw_uint(&w, "cls", cls);
    yf_jw_str(&w, "label", label);
    yf_jw_num(&w, "score", score);
    yf_jw_uint(&w, "ts_ms", ts_ms);
    yf_jw_uint(&w, "patch", patch);
    return yf_jw_end(&w);
}

size_t yf_proto_timing(char *buf, size_t cap, uint32_t patch, uint32_t frontend_us, uint32_t invoke_us,
                       uint32_t e2e_us)
{
    yf_jw_t w;
    yf_jw_begin(&w, buf, cap, "timing");
    yf_jw_uint(&w, "patch", patch);
    yf_jw_uint(&w, "frontend_us", frontend_us);
    yf_jw_uint(&w, "invoke_us", invoke_us);
    yf_jw_uint(&w, "e2e_us", e2e_us);
    return yf_jw_end(&w);
}

size_t yf_proto_data(char *buf, size_t cap, const char *type, uint32_t patch, uint32_t seq, const int8_t *q,
                     size_t n)
{
    yf_jw_t w;
    yf_jw_begin(&w, buf, cap, type);
    yf_jw_uint(&w, "patch", patch);
    yf_jw_uint(&w, "seq", seq);
    yf_jw_b64(&w, "q", q, n);
    return yf_jw_end(&w);
}

size_t yf_proto_err(char *buf, size_t cap, const char *code, const char *msg)
{
    yf_jw_t w;
    yf_jw_begin(&w, buf, cap, "err");
    yf_jw_str(&w, "code", code);
    yf_jw_str(&w, "msg", msg);
    return yf_jw_end(&w);
}

void yf_proto_reply_begin(yf_jw_t *w, char *buf, size_t cap, uint32_t id, const char *cmd, bool ok)
{
    yf_jw_begin(w, buf, cap, "reply");
    yf_jw_uint(w, "id", id);
    yf_jw_str(w, "cmd", cmd);
    yf_jw_bool(w, "ok", ok);
}

size_t yf_proto_reply_err(char *buf, size_t cap, uint32_t id, const char *cmd, const char *code, const char *msg)
{
    yf_jw_t w;
    yf_proto_reply_begin(&w, buf, cap, id, cmd, false);
    yf_jw_str(&w, "err", code);
    yf_jw_str(&w, "msg", msg);
    return yf_jw_end(&w);
}

void yf_proto_bench_fields(yf_jw_t *w, const yf_bench_summary_t *s)
{
    yf_jw_obj(w, "invoke_us");
    yf_jw_num(w, "mean", s->mean);
    yf_jw_uint(w, "min", s->min);
    yf_jw_uint(w, "max", s->max);
    yf_jw_uint(w, "p50", s->p50);
    yf_jw_uint(w, "p90", s->p90);
    yf_jw_uint(w, "p99", s->p99);
    yf_jw_num(w, "std", s->std);
    yf_jw_close(w);
}
