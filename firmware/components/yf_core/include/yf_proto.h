/* yf_proto: the serial protocol of docs/protocol.md, device side: the command decoder and the event
 * builders. The protocol's constants, command/argument table and yf_cmd_t come from yf_proto_spec.h, which
 * is generated from host/yamflash/board/protocol_spec.json (the same file the host's codec is built from);
 * the byte-level pieces are yf_line (lines), yf_json (JSON in and out) and yf_b64. Nothing here allocates:
 * every buffer belongs to the caller, and every function returns a status instead of failing. Both sides
 * run tests/vectors/protocol/ *.jsonl.
 */
#ifndef YF_PROTO_H
#define YF_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "yf_b64.h"
#include "yf_json.h"
#include "yf_line.h"
#include "yf_proto_spec.h"
#include "yf_stats.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- commands (host -> device) ---- */

/* yf_proto_parse_cmd results. BAD: count the line and skip it (no id to reply to). UNKNOWN_CMD, ARG: the
 * envelope is valid, reply ok:false with E_UNKNOWN_CMD / E_ARG and cmd->err_msg. */
typedef enum { YF_PARSE_OK = 0, YF_PARSE_BAD, YF_PARSE_UNKNOWN_CMD, YF_PARSE_ARG } yf_parse_status_t;

/* Parse the JSON of one `@yf ` line as a command, checking each argument against the generated table
 * (YF_PROTO_ARGS); the payload (pcm/patch) is decoded into payload[payload_cap] (YF_PROTO_PAYLOAD_MAX is
 * enough). Optional arguments that are absent keep zero; cmd->present says which were given. */
yf_parse_status_t yf_proto_parse_cmd(const char *json, size_t len, yf_cmd_t *cmd, uint8_t *payload,
                                     size_t payload_cap);

/* Name of command kind k ("" for YF_CMD_NONE or out of range). */
const char *yf_proto_cmd_name(yf_cmd_kind_t k);

/* int16 samples from little-endian bytes (nbytes / 2 of them); returns the sample count. */
size_t yf_pcm_from_le(const uint8_t *bytes, size_t nbytes, int16_t *out);

/* ---- events (device -> host) ---- */

/* Everything `hello` (and the `info` reply) reports. */
typedef struct {
    const char *fw, *board, *model_sha256, *src, *clock; /* src: "mic"|"host"; clock: "chip"|"host" */
    uint32_t model_bytes, labels;
    float in_scale, out_scale;
    int32_t in_zp, out_zp;
    uint32_t arena_size, arena_used;
    const char *arena_where; /* "internal"|"psram" */
    uint32_t heap_free, psram_free;
} yf_hello_t;

typedef struct {
    uint32_t uptime_ms, inferences, dropped_samples, bad_lines;
    uint32_t heap_free, heap_min, psram_free, psram_min;
    const char *const *task_names; /* stack high-water marks, n_tasks of them */
    const uint32_t *task_hwm;
    size_t n_tasks;
    uint32_t arena_size, arena_used;
    const char *arena_where;
    uint32_t patches_skipped; /* patches made while inference was still busy (not inferred; no audio lost) */
} yf_stats_t;

/* Append hello's fields (frontend constants from the YF_* macros) to an open hello or info reply. */
void yf_proto_hello_fields(yf_jw_t *w, const yf_hello_t *h);
/* Whole `hello` line; returns its length or 0 if it did not fit. */
size_t yf_proto_hello(char *buf, size_t cap, const yf_hello_t *h);
/* Whole `stats` line. */
size_t yf_proto_stats(char *buf, size_t cap, const yf_stats_t *s);
/* A `stats` line with all its fields, left open for more members (then yf_jw_end). */
void yf_proto_stats_begin(yf_jw_t *w, char *buf, size_t cap, const yf_stats_t *s);
/* Whole `det` line for one detection with its label. */
size_t yf_proto_det(char *buf, size_t cap, uint16_t cls, const char *label, float score, uint32_t ts_ms,
                    uint32_t patch);
/* Whole `timing` line. */
size_t yf_proto_timing(char *buf, size_t cap, uint32_t patch, uint32_t frontend_us, uint32_t invoke_us,
                       uint32_t e2e_us);
/* Whole `scores` or `patch` line (type "scores"|"patch") carrying n int8 values in base64. */
size_t yf_proto_data(char *buf, size_t cap, const char *type, uint32_t patch, uint32_t seq, const int8_t *q,
                     size_t n);
/* Whole `err` line. */
size_t yf_proto_err(char *buf, size_t cap, const char *code, const char *msg);
/* Start a `reply` with id, cmd and ok; add fields, then yf_jw_end. */
void yf_proto_reply_begin(yf_jw_t *w, char *buf, size_t cap, uint32_t id, const char *cmd, bool ok);
/* Whole failed `reply` with an error code (E_*) and message. */
size_t yf_proto_reply_err(char *buf, size_t cap, uint32_t id, const char *cmd, const char *code, const char *msg);
/* Append `invoke_us`: {mean,min,max,p50,p90,p99,std} to an open bench reply. */
void yf_proto_bench_fields(yf_jw_t *w, const yf_bench_summary_t *s);

#ifdef __cplusplus
}
#endif
#endif
