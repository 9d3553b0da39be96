/* yf_device: the board's side of the protocol, whole: bytes in, every command decoded, checked, acted on
 * through the app's ops, and answered. The firmware (firmware/main) and the virtual board (through the host
 * binding) give the same code their ops, so both answer commands with the same rules, codes and messages;
 * the app only moves bytes, runs tasks and owns the hardware.
 *
 * Rules that live here: the source gate of `pcm` (E_BUSY while the source is the microphone), seq tracking of
 * the host's pcm and patch streams (E_SEQ with `expected`; a stream's first seq, and the first after a
 * `source`, is taken as it comes), the detector's partial update and range check, bench's default n, and the
 * shape of every reply. Pure C99, no allocation: the app owns the yf_device_t (about 41 KB, PSRAM is fine).
 *
 * Ops are called from the task that feeds the device. `patch` and `bench` may answer later from another task
 * with yf_device_patch_reply / yf_device_bench_reply into that task's own buffer.
 */
#ifndef YF_DEVICE_H
#define YF_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "yf_detect.h"
#include "yf_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An op's failure: the reply carries ok:false, err = code (an E_* of yf_proto_spec.h) and msg. */
typedef struct {
    const char *code;
    const char *msg;
} yf_op_err_t;

/* A host patch handed to the app: copy q during the call, infer, then answer with yf_device_patch_reply. */
typedef struct {
    uint32_t id, seq;
    bool seq_gap;      /* seq did not follow the previous one: the reply says E_SEQ (the patch is still inferred) */
    uint32_t expected; /* the seq that was expected */
    const int8_t *q;   /* YF_PROTO_PATCH_BYTES values, valid only during the call */
} yf_patch_req_t;

/* What the app provides. An op returning nonzero fills *err and the command is answered ok:false. */
typedef struct {
    /* Write one finished line (len 0: the line did not fit and is dropped). */
    void (*emit)(void *ctx, const char *line, size_t len);
    /* info/hello: everything hello reports (src is filled in by the device). */
    int (*hello)(void *ctx, yf_hello_t *h, yf_op_err_t *err);
    /* Optional (NULL): add board-specific members to a "hello"/"info"/"stats" line being written. */
    void (*extra)(void *ctx, const char *what, yf_jw_t *w);
    /* source: switch the audio source; patches count from 0 again (the reply waits until this returns). */
    int (*source)(void *ctx, yf_src_t src, yf_op_err_t *err);
    /* pcm (only while the source is host): n samples; *accepted = how many the audio path took. */
    int (*pcm)(void *ctx, const int16_t *pcm, size_t n, size_t *accepted, yf_op_err_t *err);
    /* patch: take the patch (answer later with yf_device_patch_reply). */
    int (*patch)(void *ctx, const yf_patch_req_t *req, yf_op_err_t *err);
    /* stream: which events to emit for audio the frontend processes. */
    void (*stream)(void *ctx, bool scores, bool patches);
    /* detector: the current configuration and the model's label count... */
    int (*detector_get)(void *ctx, yf_detect_config_t *cfg, uint32_t *n_labels, yf_op_err_t *err);
    /* ...and a checked new one to apply. */
    int (*detector_set)(void *ctx, const yf_detect_config_t *cfg, yf_op_err_t *err);
    /* bench: n invokes on the current input (answer later with yf_device_bench_reply). */
    int (*bench)(void *ctx, uint32_t id, uint32_t n, yf_op_err_t *err);
    /* reset: reboot; called once the reply was emitted. */
    void (*reset)(void *ctx);
} yf_device_ops_t;

typedef struct {
    const yf_device_ops_t *ops;
    void *ctx;
    yf_src_t src;
    uint32_t pcm_last, patch_last; /* last seq of each host stream */
    bool pcm_seen, patch_seen;
    yf_line_asm_t lines;
    uint8_t payload[YF_PROTO_PAYLOAD_MAX];
    int16_t pcm[YF_PROTO_MAX_PCM_SAMPLES];
    char msg[96];                  /* a formatted error message */
    char out[YF_PROTO_MAX_LINE + 1]; /* replies written by the feeding task */
} yf_device_t;

/* Start a device with its ops and the source the board boots with. */
void yf_device_init(yf_device_t *d, const yf_device_ops_t *ops, void *ctx, yf_src_t src);
/* Bytes from the host: every complete `@yf ` line is handled as a command (log lines are ignored). */
void yf_device_feed(yf_device_t *d, const uint8_t *data, size_t n);
/* One command line's JSON (after the prefix): decode, act, reply; a line that does not parse is counted. */
void yf_device_command(yf_device_t *d, const char *json, size_t len);
/* The current source and the count of bad lines (over-long or unparsable). */
yf_src_t yf_device_src(const yf_device_t *d);
uint32_t yf_device_bad_lines(const yf_device_t *d);

/* Emit a hello line (ops->hello, then extra "hello") into buf[cap]; 0 if it failed or did not fit. */
size_t yf_device_hello(yf_device_t *d, char *buf, size_t cap);
/* Emit a stats line into buf[cap] (s->bad_lines is the device's; then extra "stats"); returns its length. */
size_t yf_device_stats(yf_device_t *d, yf_stats_t *s, char *buf, size_t cap);

/* The reply to a host patch: scores[n] and the invoke time. Returns the line length (0: did not fit). */
size_t yf_device_patch_reply(char *buf, size_t cap, const yf_patch_req_t *req, const int8_t *scores, size_t n,
                             uint32_t invoke_us);
/* Start the reply to a bench of n invokes: sorts us[n], writes n, invoke_us (nearest-rank percentiles) and
 * ops[n_ops] as the mean per invoke of each op. Add members if needed, then yf_jw_end(w). */
void yf_device_bench_reply(yf_jw_t *w, char *buf, size_t cap, uint32_t id, uint32_t *us, uint32_t n,
                           const yf_bench_op_t *ops, size_t n_ops);

#ifdef __cplusplus
}
#endif
#endif
