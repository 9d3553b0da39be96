/* yf_proto: the serial protocol of docs/protocol.md (version 1), device side.
 *
 * Line assembler (bytes -> lines, `@yf ` lines apart from log lines, over-long lines counted and
 * skipped), command decoder (a minimal JSON parser for the command subset), event encoder (a bounded
 * JSON writer) and base64. Nothing here allocates: every buffer belongs to the caller, and every
 * function returns a status instead of failing. host/yamflash/protocol.py mirrors it; both are tested
 * against tests/vectors/protocol/ *.jsonl.
 */
#ifndef YF_PROTO_H
#define YF_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define YF_PROTO_VERSION 1
#define YF_PROTO_PREFIX "@yf "
#define YF_PROTO_PREFIX_LEN 4
#define YF_PROTO_MAX_LINE 12288      /* bytes, prefix and newline included */
#define YF_PROTO_MAX_TOKENS 128      /* JSON keys + values in one command */
#define YF_PROTO_MAX_DEPTH 2         /* object/array nesting in a command */
#define YF_PROTO_MAX_NUMBER 63       /* characters in one JSON number */
#define YF_PROTO_MAX_PCM_SAMPLES 4096
#define YF_PROTO_PATCH_BYTES 6144    /* 96 x 64 int8 */
#define YF_PROTO_MAX_CLASSES 32      /* entries of a detector command's classes */
#define YF_PROTO_PAYLOAD_MAX (2 * YF_PROTO_MAX_PCM_SAMPLES) /* bytes a decoded payload may need */

/* ---- base64 (RFC 4648, standard alphabet, padded) ---- */

/* Characters base64 needs for n bytes. */
size_t yf_b64_len(size_t n);

/* Encode n bytes into dst (no NUL written); returns characters written, or 0 when cap is too small. */
size_t yf_b64_encode(const void *src, size_t n, char *dst, size_t cap);

/* Decode strictly (length a multiple of 4, padding only at the end, zero spare bits); returns 0 and
 * sets *out_len, or -1 on invalid input or when the result exceeds cap. */
int yf_b64_decode(const char *src, size_t len, uint8_t *dst, size_t cap, size_t *out_len);

/* ---- line assembler ---- */

typedef enum { YF_LINE_NONE = 0, YF_LINE_PROTO = 1, YF_LINE_LOG = 2 } yf_line_kind_t;

typedef struct {
    yf_line_kind_t kind; /* YF_LINE_NONE: no complete line yet */
    const char *text;    /* the line without newline or trailing CR; valid until the next feed */
    size_t len;
    const char *json;    /* YF_LINE_PROTO: the JSON after the prefix */
    size_t json_len;
} yf_line_t;

typedef struct {
    char buf[YF_PROTO_MAX_LINE];  /* line being assembled (the newline is never stored) */
    size_t len;
    bool discarding;              /* inside an over-long line: drop bytes up to its newline */
    bool ready;                   /* buf holds a line returned by the last feed */
    uint32_t proto_lines;         /* complete `@yf ` lines returned */
    uint32_t log_lines;           /* complete other lines returned */
    uint32_t long_lines;          /* over-long lines discarded */
    uint32_t bad_lines;           /* long_lines + lines the caller reported with yf_line_bad() */
} yf_line_asm_t;

/* Empty the assembler and zero its counters. */
void yf_line_init(yf_line_asm_t *a);

/* Take bytes up to and including the next newline; returns bytes consumed and fills *out (kind NONE
 * when the bytes ran out first). Call again with the rest. Never fails. */
size_t yf_line_feed(yf_line_asm_t *a, const uint8_t *data, size_t n, yf_line_t *out);

/* Count a returned protocol line that did not parse as bad. */
void yf_line_bad(yf_line_asm_t *a);

/* ---- commands (host -> device) ---- */

typedef enum {
    YF_CMD_NONE = 0,
    YF_CMD_PING,
    YF_CMD_INFO,
    YF_CMD_SOURCE,
    YF_CMD_PCM,
    YF_CMD_PATCH,
    YF_CMD_STREAM,
    YF_CMD_DETECTOR,
    YF_CMD_BENCH,
    YF_CMD_RESET
} yf_cmd_kind_t;

/* yf_proto_parse_cmd results. BAD: count the line and skip it (no id to reply to). UNKNOWN_CMD, ARG: the
 * envelope is valid, reply ok:false with E_UNKNOWN_CMD / E_ARG and cmd->err_msg. */
typedef enum { YF_PARSE_OK = 0, YF_PARSE_BAD, YF_PARSE_UNKNOWN_CMD, YF_PARSE_ARG } yf_parse_status_t;

typedef enum { YF_SRC_MIC = 0, YF_SRC_HOST = 1 } yf_src_t;

/* Detector fields present in a detector command (a partial update). */
#define YF_DET_HAS_CLASSES 0x01u
#define YF_DET_HAS_THRESHOLD 0x02u
#define YF_DET_HAS_WINDOW 0x04u
#define YF_DET_HAS_MIN_COUNT 0x08u
#define YF_DET_HAS_REFRACTORY 0x10u

#define YF_PROTO_CMD_NAME_MAX 24

typedef struct {
    uint32_t id;
    yf_cmd_kind_t kind;
    char name[YF_PROTO_CMD_NAME_MAX]; /* cmd as received (truncated, NUL-terminated): echo it in the reply */
    const char *err_msg;              /* static text for UNKNOWN_CMD/ARG replies */
    /* source */
    yf_src_t src;
    /* pcm, patch */
    uint32_t seq;
    const uint8_t *data; /* decoded payload in the caller's buffer: int16 LE samples (pcm) or int8 (patch) */
    size_t data_len;     /* bytes */
    /* stream (absent flags are false) */
    bool scores, patches;
    /* detector */
    uint32_t det_present; /* YF_DET_HAS_* */
    uint16_t classes[YF_PROTO_MAX_CLASSES];
    uint32_t n_classes;
    float threshold;
    uint32_t window, min_count, refractory_ms;
    /* bench */
    bool has_n;
    uint32_t n;
} yf_cmd_t;

/* Parse the JSON of one `@yf ` line as a command; the payload (pcm/patch) is decoded into
 * payload[payload_cap] (YF_PROTO_PAYLOAD_MAX is enough). */
yf_parse_status_t yf_proto_parse_cmd(const char *json, size_t len, yf_cmd_t *cmd, uint8_t *payload,
                                     size_t payload_cap);

/* int16 samples from little-endian bytes (nbytes / 2 of them); returns the sample count. */
size_t yf_pcm_from_le(const uint8_t *bytes, size_t nbytes, int16_t *out);

/* ---- events (device -> host): a bounded JSON writer ---- */

#define YF_JW_MAX_DEPTH 8

typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    uint32_t depth;
    uint32_t has_items; /* bit d: the container at depth d already has an item (needs a comma) */
    bool overflow;      /* something did not fit: yf_jw_end returns 0 */
} yf_jw_t;

/* Start a line `@yf {"t":<type>,"v":1` in buf[cap]. */
void yf_jw_begin(yf_jw_t *w, char *buf, size_t cap, const char *type);
/* Add a string member (key NULL inside arrays); the value is escaped. */
void yf_jw_str(yf_jw_t *w, const char *key, const char *s);
/* Add a signed integer member. */
void yf_jw_int(yf_jw_t *w, const char *key, int64_t v);
/* Add an unsigned integer member. */
void yf_jw_uint(yf_jw_t *w, const char *key, uint64_t v);
/* Add a number member with 9 significant digits (a float32 survives); NaN and infinities become null. */
void yf_jw_num(yf_jw_t *w, const char *key, double v);
/* Add a boolean member. */
void yf_jw_bool(yf_jw_t *w, const char *key, bool v);
/* Add a base64 string member holding n bytes. */
void yf_jw_b64(yf_jw_t *w, const char *key, const void *data, size_t n);
/* Open a nested object member. */
void yf_jw_obj(yf_jw_t *w, const char *key);
/* Open a nested array member. */
void yf_jw_arr(yf_jw_t *w, const char *key);
/* Close the innermost nested object or array. */
void yf_jw_close(yf_jw_t *w);
/* Close everything, append "\n" and a NUL; returns the line length (newline included, NUL not), or 0
 * when it did not fit in cap or the line would exceed YF_PROTO_MAX_LINE. */
size_t yf_jw_end(yf_jw_t *w);

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
} yf_stats_t;

/* Invoke-time statistics of a bench run (microseconds). */
typedef struct {
    uint32_t n;
    double mean, std;
    uint32_t min, max, p50, p90, p99;
} yf_bench_summary_t;

/* Append hello's fields (frontend constants from the YF_* macros) to an open hello or info reply. */
void yf_proto_hello_fields(yf_jw_t *w, const yf_hello_t *h);
/* Whole `hello` line; returns its length or 0 if it did not fit. */
size_t yf_proto_hello(char *buf, size_t cap, const yf_hello_t *h);
/* Whole `stats` line. */
size_t yf_proto_stats(char *buf, size_t cap, const yf_stats_t *s);
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
/* Sort us[n] in place and summarize it (n = 0 gives zeros). */
void yf_bench_summarize(uint32_t *us, size_t n, yf_bench_summary_t *out);
/* Append `invoke_us`: {mean,min,max,p50,p90,p99,std} to an open bench reply. */
void yf_proto_bench_fields(yf_jw_t *w, const yf_bench_summary_t *s);

#ifdef __cplusplus
}
#endif
#endif
