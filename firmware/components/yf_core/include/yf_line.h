/* yf_line: the line assembler. Bytes in, complete lines out: `@yf ` lines apart from log lines, a line longer
 * than YF_PROTO_MAX_LINE (newline included) dropped up to its newline and counted, never an error. */
#ifndef YF_LINE_H
#define YF_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "yf_proto_spec.h"

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif
#endif
