/* yf_json: the JSON the protocol needs, read and written without allocation.
 *
 * Reader: one object of the command subset into a fixed token array, following Python's json module where
 * JSON leaves room (strict UTF-8, all escapes, strings compared after unescaping, duplicate keys rejected),
 * with the protocol's limits (YF_PROTO_MAX_TOKENS, _MAX_DEPTH, _MAX_NUMBER). host/yamflash/board/protocol.py
 * accepts and rejects the same lines; both run tests/vectors/protocol.
 * Writer: a bounded `@yf {...}\n` line builder that refuses (returns 0) rather than send a cut line.
 */
#ifndef YF_JSON_H
#define YF_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "yf_proto_spec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- reader ---- */

enum { YF_J_OBJ, YF_J_ARR, YF_J_STR, YF_J_NUM, YF_J_TRUE, YF_J_FALSE, YF_J_NULL };

typedef struct {
    uint8_t type;
    bool is_int;    /* YF_J_NUM without fraction or exponent */
    bool escaped;   /* YF_J_STR containing a backslash */
    uint16_t start; /* YF_J_STR: first byte after the quote; else first byte of the value */
    uint16_t end;   /* YF_J_STR: the closing quote; else one past the value */
    uint16_t next;  /* index of the token after this value's subtree */
    uint16_t count; /* YF_J_OBJ: members; YF_J_ARR: elements */
} yf_jtok_t;

typedef struct {
    const char *s;
    size_t len, pos;
    yf_jtok_t tok[YF_PROTO_MAX_TOKENS];
    unsigned ntok;
} yf_json_t;

/* Parse s[len] as one JSON object within the protocol's limits, keys unique in every object; false if not. */
bool yf_json_parse(yf_json_t *p, const char *s, size_t len);
/* Value token of a top-level member, or NULL. */
const yf_jtok_t *yf_json_member(const yf_json_t *p, const char *key);
/* The token after t's subtree (the next array element or object key). */
const yf_jtok_t *yf_json_next(const yf_json_t *p, const yf_jtok_t *t);
/* A string token equal (after unescaping) to lit. */
bool yf_json_str_eq(const yf_json_t *p, const yf_jtok_t *t, const char *lit);
/* An integer token (no fraction or exponent) within [lo, hi]. */
bool yf_json_int(const yf_json_t *p, const yf_jtok_t *t, int64_t lo, int64_t hi, int64_t *out);
/* A number token (integer or not). */
bool yf_json_num(const yf_json_t *p, const yf_jtok_t *t, double *out);
/* true or false. */
bool yf_json_bool(const yf_jtok_t *t, bool *out);
/* A string token holding canonical base64 (escapes allowed), decoded into dst[cap]. */
bool yf_json_b64(const yf_json_t *p, const yf_jtok_t *t, uint8_t *dst, size_t cap, size_t *out_len);
/* A string token unescaped into dst[cap] (NUL-terminated, cut to fit), non-printable-ASCII as '?'. */
void yf_json_copy_ascii(const yf_json_t *p, const yf_jtok_t *t, char *dst, size_t cap);

/* ---- writer ---- */

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

#ifdef __cplusplus
}
#endif
#endif
