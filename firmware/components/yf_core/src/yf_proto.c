/* The serial protocol, device side: see docs/protocol.md and yf_proto.h.
 *
 * The decoder must accept and reject exactly what host/yamflash/protocol.py does (both run the vectors in
 * tests/vectors/protocol), so it follows Python's json module where the spec is silent: strict UTF-8,
 * all JSON escapes, string comparison after unescaping, duplicate keys rejected.
 */
#include "yf_proto.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yf_frontend.h"
#include "yf_patch.h"

/* ------------------------------------------------------------------ base64 */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t yf_b64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

size_t yf_b64_encode(const void *src, size_t n, char *dst, size_t cap)
{
    const uint8_t *s = (const uint8_t *)src;
    size_t need = yf_b64_len(n), o = 0;
    if (need > cap) {
        return 0;
    }
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)s[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= s[i + 2];
        }
        dst[o++] = B64[(v >> 18) & 63];
        dst[o++] = B64[(v >> 12) & 63];
        dst[o++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
        dst[o++] = i + 2 < n ? B64[v & 63] : '=';
    }
    return o;
}

static int b64_value(uint32_t c)
{
    if (c >= 'A' && c <= 'Z') {
        return (int)(c - 'A');
    }
    if (c >= 'a' && c <= 'z') {
        return (int)(c - 'a' + 26);
    }
    if (c >= '0' && c <= '9') {
        return (int)(c - '0' + 52);
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

/* Strict base64 decoding one character at a time, so it can read straight from an escaped JSON string. */
typedef struct {
    uint8_t *dst;
    size_t cap, len;
    uint32_t quad[4];
    unsigned nq;
    bool padded; /* a quad with '=' was seen: nothing may follow */
    bool bad;
} b64_dec_t;

static void b64_put(b64_dec_t *d, uint32_t c)
{
    if (d->bad) {
        return;
    }
    if (d->padded) {
        d->bad = true;
        return;
    }
    d->quad[d->nq++] = c;
    if (d->nq < 4) {
        return;
    }
    d->nq = 0;
    int v0 = b64_value(d->quad[0]), v1 = b64_value(d->quad[1]);
    int v2 = b64_value(d->quad[2]), v3 = b64_value(d->quad[3]);
    unsigned out;
    if (v0 < 0 || v1 < 0) {
        d->bad = true;
        return;
    }
    if (v2 >= 0 && v3 >= 0) {
        out = 3;
    } else if (v2 >= 0 && d->quad[3] == '=') {
        out = 2;
        d->padded = true;
        if (v2 & 3) { /* spare bits must be zero: one encoding per byte string, as Python checks */
            d->bad = true;
            return;
        }
    } else if (d->quad[2] == '=' && d->quad[3] == '=') {
        out = 1;
        d->padded = true;
        if (v1 & 15) {
            d->bad = true;
            return;
        }
    } else {
        d->bad = true;
        return;
    }
    if (d->len + out > d->cap) {
        d->bad = true;
        return;
    }
    uint32_t v = ((uint32_t)v0 << 18) | ((uint32_t)v1 << 12) | ((uint32_t)(v2 < 0 ? 0 : v2) << 6) |
                 (uint32_t)(v3 < 0 ? 0 : v3);
    d->dst[d->len++] = (uint8_t)(v >> 16);
    if (out > 1) {
        d->dst[d->len++] = (uint8_t)(v >> 8);
    }
    if (out > 2) {
        d->dst[d->len++] = (uint8_t)v;
    }
}

static int b64_finish(b64_dec_t *d, size_t *out_len)
{
    if (d->bad || d->nq != 0) {
        return -1;
    }
    *out_len = d->len;
    return 0;
}

int yf_b64_decode(const char *src, size_t len, uint8_t *dst, size_t cap, size_t *out_len)
{
    b64_dec_t d = {dst, cap, 0, {0, 0, 0, 0}, 0, false, false};
    for (size_t i = 0; i < len && !d.bad; i++) {
        b64_put(&d, (uint8_t)src[i]);
    }
    return b64_finish(&d, out_len);
}

/* ------------------------------------------------------------------ line assembler */

void yf_line_init(yf_line_asm_t *a)
{
    memset(a, 0, sizeof(*a));
}

void yf_line_bad(yf_line_asm_t *a)
{
    a->bad_lines++;
}

size_t yf_line_feed(yf_line_asm_t *a, const uint8_t *data, size_t n, yf_line_t *out)
{
    memset(out, 0, sizeof(*out));
    if (a->ready) {
        a->ready = false;
        a->len = 0;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t c = data[i];
        if (c == '\n') {
            if (a->discarding) { /* end of an over-long line, already counted */
                a->discarding = false;
                a->len = 0;
                continue;
            }
            size_t len = a->len;
            if (len > 0 && a->buf[len - 1] == '\r') {
                len--;
            }
            a->buf[len] = '\0'; /* len < YF_PROTO_MAX_LINE always: room for the NUL */
            a->ready = true;
            out->text = a->buf;
            out->len = len;
            if (len >= YF_PROTO_PREFIX_LEN && memcmp(a->buf, YF_PROTO_PREFIX, YF_PROTO_PREFIX_LEN) == 0) {
                out->kind = YF_LINE_PROTO;
                out->json = a->buf + YF_PROTO_PREFIX_LEN;
                out->json_len = len - YF_PROTO_PREFIX_LEN;
                a->proto_lines++;
            } else {
                out->kind = YF_LINE_LOG;
                a->log_lines++;
            }
            return i + 1;
        }
        if (a->discarding) {
            continue;
        }
        if (a->len >= YF_PROTO_MAX_LINE - 1) { /* the newline would make it longer than the limit */
            a->discarding = true;
            a->len = 0;
            a->long_lines++;
            a->bad_lines++;
            continue;
        }
        a->buf[a->len++] = (char)c;
    }
    return n;
}

/* ------------------------------------------------------------------ JSON reader (command subset) */

enum { J_OBJ, J_ARR, J_STR, J_NUM, J_TRUE, J_FALSE, J_NULL };

typedef struct {
    uint8_t type;
    bool is_int;    /* J_NUM without fraction or exponent */
    bool escaped;   /* J_STR containing a backslash */
    uint16_t start; /* J_STR: first byte after the quote; else first byte of the value */
    uint16_t end;   /* J_STR: the closing quote; else one past the value */
    uint16_t next;  /* index of the token after this value's subtree */
    uint16_t count; /* J_OBJ: members; J_ARR: elements */
} jtok_t;

typedef struct {
    const char *s;
    size_t len, pos;
    jtok_t tok[YF_PROTO_MAX_TOKENS];
    unsigned ntok;
} jparser_t;

/* Strict UTF-8 as Python's decoder: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        unsigned need;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) {
                lo = 0xA0;
            } else if (c == 0xED) {
                hi = 0x9F;
            }
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) {
                lo = 0x90;
            } else if (c == 0xF4) {
                hi = 0x8F;
            }
        } else {
            return false;
        }
        if (i + need >= n) {
            return false;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return false;
        }
        for (unsigned k = 2; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
        }
        i += need + 1;
    }
    return true;
}

static void skip_ws(jparser_t *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            break;
        }
        p->pos++;
    }
}

static int new_tok(jparser_t *p, uint8_t type, size_t start)
{
    if (p->ntok >= YF_PROTO_MAX_TOKENS) {
        return -1;
    }
    jtok_t *t = &p->tok[p->ntok];
    memset(t, 0, sizeof(*t));
    t->type = type;
    t->start = (uint16_t)start;
    return (int)p->ntok++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static bool parse_string(jparser_t *p)
{
    size_t i = p->pos + 1; /* after the opening quote */
    int t = new_tok(p, J_STR, i);
    if (t < 0) {
        return false;
    }
    while (i < p->len) {
        uint8_t c = (uint8_t)p->s[i];
        if (c == '"') {
            p->tok[t].end = (uint16_t)i;
            p->tok[t].next = (uint16_t)p->ntok;
            p->pos = i + 1;
            return true;
        }
        if (c < 0x20) {
            return false;
        }
        if (c == '\\') {
            p->tok[t].escaped = true;
            if (i + 1 >= p->len) {
                return false;
            }
            char e = p->s[i + 1];
            if (e == 'u') {
                if (i + 5 >= p->len) {
                    return false;
                }
                for (unsigned k = 2; k < 6; k++) {
                    if (hexval(p->s[i + k]) < 0) {
                        return false;
                    }
                }
                i += 6;
                continue;
            }
            if (e == '\0' || !strchr("\"\\/bfnrt", e)) {
                return false;
            }
            i += 2;
            continue;
        }
        i++;
    }
    return false;
}

static bool parse_number(jparser_t *p)
{
    size_t i = p->pos, start = i;
    bool is_int = true;
    if (i < p->len && p->s[i] == '-') {
        i++;
    }
    if (i >= p->len) {
        return false;
    }
    if (p->s[i] == '0') {
        i++;
    } else if (p->s[i] >= '1' && p->s[i] <= '9') {
        while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9') {
            i++;
        }
    } else {
        return false;
    }
    if (i < p->len && p->s[i] == '.') {
        is_int = false;
        i++;
        size_t d = i;
        while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9') {
            i++;
        }
        if (i == d) {
            return false;
        }
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        is_int = false;
        i++;
        if (i < p->len && (p->s[i] == '+' || p->s[i] == '-')) {
            i++;
        }
        size_t d = i;
        while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9') {
            i++;
        }
        if (i == d) {
            return false;
        }
    }
    if (i - start > YF_PROTO_MAX_NUMBER) {
        return false;
    }
    int t = new_tok(p, J_NUM, start);
    if (t < 0) {
        return false;
    }
    p->tok[t].end = (uint16_t)i;
    p->tok[t].is_int = is_int;
    p->tok[t].next = (uint16_t)p->ntok;
    p->pos = i;
    return true;
}

static bool parse_literal(jparser_t *p, const char *word, uint8_t type)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) {
        return false;
    }
    int t = new_tok(p, type, p->pos);
    if (t < 0) {
        return false;
    }
    p->pos += n;
    p->tok[t].end = (uint16_t)p->pos;
    p->tok[t].next = (uint16_t)p->ntok;
    return true;
}

static bool parse_value(jparser_t *p, unsigned depth);

static bool parse_container(jparser_t *p, unsigned depth, bool is_obj)
{
    if (depth > YF_PROTO_MAX_DEPTH) {
        return false;
    }
    int t = new_tok(p, is_obj ? J_OBJ : J_ARR, p->pos);
    if (t < 0) {
        return false;
    }
    char close = is_obj ? '}' : ']';
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
    } else {
        for (;;) {
            if (is_obj) {
                skip_ws(p);
                if (p->pos >= p->len || p->s[p->pos] != '"' || !parse_string(p)) {
                    return false;
                }
                skip_ws(p);
                if (p->pos >= p->len || p->s[p->pos] != ':') {
                    return false;
                }
                p->pos++;
            }
            if (!parse_value(p, depth + 1)) {
                return false;
            }
            p->tok[t].count++;
            skip_ws(p);
            if (p->pos >= p->len) {
                return false;
            }
            char c = p->s[p->pos++];
            if (c == close) {
                break;
            }
            if (c != ',') {
                return false;
            }
        }
    }
    p->tok[t].end = (uint16_t)p->pos;
    p->tok[t].next = (uint16_t)p->ntok;
    return true;
}

/* depth: nesting of the value's container (the top-level object is at depth 1). */
static bool parse_value(jparser_t *p, unsigned depth)
{
    skip_ws(p);
    if (p->pos >= p->len) {
        return false;
    }
    switch (p->s[p->pos]) {
    case '{':
        return parse_container(p, depth, true);
    case '[':
        return parse_container(p, depth, false);
    case '"':
        return parse_string(p);
    case 't':
        return parse_literal(p, "true", J_TRUE);
    case 'f':
        return parse_literal(p, "false", J_FALSE);
    case 'n':
        return parse_literal(p, "null", J_NULL);
    default:
        return parse_number(p);
    }
}

/* Code points of a string token, escapes decoded (surrogate pairs joined, as Python's json does). */
typedef struct {
    const char *s;
    size_t pos, end;
} cp_iter_t;

static unsigned hex4(const char *s)
{
    return (unsigned)((hexval(s[0]) << 12) | (hexval(s[1]) << 8) | (hexval(s[2]) << 4) | hexval(s[3]));
}

/* Next code point, or -1 at the end. Input is validated JSON and UTF-8. */
static long cp_next(cp_iter_t *it)
{
    if (it->pos >= it->end) {
        return -1;
    }
    const uint8_t *s = (const uint8_t *)it->s;
    uint8_t c = s[it->pos];
    if (c == '\\') {
        char e = it->s[it->pos + 1];
        it->pos += 2;
        switch (e) {
        case 'b':
            return '\b';
        case 'f':
            return '\f';
        case 'n':
            return '\n';
        case 'r':
            return '\r';
        case 't':
            return '\t';
        case 'u': {
            unsigned u = hex4(it->s + it->pos);
            it->pos += 4;
            if (u >= 0xD800 && u < 0xDC00 && it->pos + 6 <= it->end && it->s[it->pos] == '\\' &&
                it->s[it->pos + 1] == 'u') {
                unsigned lo = hex4(it->s + it->pos + 2);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    it->pos += 6;
                    return 0x10000L + (((long)u - 0xD800) << 10) + ((long)lo - 0xDC00);
                }
            }
            return (long)u;
        }
        default:
            return (unsigned char)e; /* \" \\ \/ */
        }
    }
    if (c < 0x80) {
        it->pos++;
        return c;
    }
    unsigned extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
    long cp = c & (0x3F >> extra);
    for (unsigned k = 1; k <= extra; k++) {
        cp = (cp << 6) | (s[it->pos + k] & 0x3F);
    }
    it->pos += extra + 1;
    return cp;
}

static cp_iter_t str_iter(const jparser_t *p, const jtok_t *t)
{
    cp_iter_t it = {p->s, t->start, t->end};
    return it;
}

static bool str_eq(const jparser_t *p, const jtok_t *t, const char *lit)
{
    if (t->type != J_STR) {
        return false;
    }
    if (!t->escaped) {
        size_t n = strlen(lit);
        return (size_t)(t->end - t->start) == n && memcmp(p->s + t->start, lit, n) == 0;
    }
    cp_iter_t it = str_iter(p, t);
    for (const unsigned char *l = (const unsigned char *)lit; *l; l++) {
        if (cp_next(&it) != (long)*l) {
            return false;
        }
    }
    return cp_next(&it) == -1;
}

static bool str_tok_eq(const jparser_t *p, const jtok_t *a, const jtok_t *b)
{
    cp_iter_t ia = str_iter(p, a), ib = str_iter(p, b);
    for (;;) {
        long ca = cp_next(&ia), cb = cp_next(&ib);
        if (ca != cb) {
            return false;
        }
        if (ca < 0) {
            return true;
        }
    }
}

/* Every object's keys distinct (Python's side rejects duplicates too: "last one wins" hides mistakes). */
static bool keys_unique(const jparser_t *p)
{
    for (unsigned o = 0; o < p->ntok; o++) {
        if (p->tok[o].type != J_OBJ) {
            continue;
        }
        for (unsigned k = o + 1; k < p->tok[o].next; k = p->tok[p->tok[k].next].next) {
            for (unsigned j = o + 1; j < k; j = p->tok[p->tok[j].next].next) {
                if (str_tok_eq(p, &p->tok[j], &p->tok[k])) {
                    return false;
                }
            }
        }
    }
    return true;
}

/* Value token of a top-level member, or NULL. */
static const jtok_t *member(const jparser_t *p, const char *key)
{
    for (unsigned k = 1; k < p->tok[0].next; k = p->tok[p->tok[k].next].next) {
        if (str_eq(p, &p->tok[k], key)) {
            return &p->tok[k + 1];
        }
    }
    return NULL;
}

/* Integer value of a number token within [lo, hi]. */
static bool tok_int(const jparser_t *p, const jtok_t *t, int64_t lo, int64_t hi, int64_t *out)
{
    if (!t || t->type != J_NUM || !t->is_int) {
        return false;
    }
    const char *s = p->s + t->start;
    size_t n = (size_t)(t->end - t->start), i = 0;
    bool neg = false;
    if (s[0] == '-') {
        neg = true;
        i = 1;
    }
    int64_t v = 0;
    for (; i < n; i++) {
        if (v > (INT64_MAX - 9) / 10) {
            return false; /* far outside any field's range */
        }
        v = v * 10 + (s[i] - '0');
    }
    if (neg) {
        v = -v;
    }
    if (v < lo || v > hi) {
        return false;
    }
    *out = v;
    return true;
}

static bool tok_num(const jparser_t *p, const jtok_t *t, double *out)
{
    if (!t || t->type != J_NUM) {
        return false;
    }
    char tmp[YF_PROTO_MAX_NUMBER + 1];
    size_t n = (size_t)(t->end - t->start);
    memcpy(tmp, p->s + t->start, n);
    tmp[n] = '\0';
    *out = strtod(tmp, NULL); /* the grammar was checked already; strtod only converts */
    return true;
}

static bool tok_bool(const jtok_t *t, bool *out)
{
    if (!t || (t->type != J_TRUE && t->type != J_FALSE)) {
        return false;
    }
    *out = t->type == J_TRUE;
    return true;
}

static bool tok_b64(const jparser_t *p, const jtok_t *t, uint8_t *dst, size_t cap, size_t *out_len)
{
    if (!t || t->type != J_STR) {
        return false;
    }
    if (!t->escaped) {
        return yf_b64_decode(p->s + t->start, (size_t)(t->end - t->start), dst, cap, out_len) == 0;
    }
    b64_dec_t d = {dst, cap, 0, {0, 0, 0, 0}, 0, false, false};
    cp_iter_t it = str_iter(p, t);
    for (long c; (c = cp_next(&it)) >= 0 && !d.bad;) {
        b64_put(&d, c < 128 ? (uint32_t)c : 0u); /* 0 is no base64 character */
    }
    return b64_finish(&d, out_len) == 0;
}

static void copy_name(const jparser_t *p, const jtok_t *t, char *dst, size_t cap)
{
    size_t o = 0;
    cp_iter_t it = str_iter(p, t);
    for (long c; (c = cp_next(&it)) >= 0 && o + 1 < cap;) {
        dst[o++] = (c >= 0x20 && c < 0x7F) ? (char)c : '?'; /* the echo is for people: ASCII is enough */
    }
    dst[o] = '\0';
}

static const struct {
    const char *name;
    yf_cmd_kind_t kind;
} CMDS[] = {
    {"ping", YF_CMD_PING},     {"info", YF_CMD_INFO},         {"source", YF_CMD_SOURCE},
    {"pcm", YF_CMD_PCM},       {"patch", YF_CMD_PATCH},       {"stream", YF_CMD_STREAM},
    {"detector", YF_CMD_DETECTOR}, {"bench", YF_CMD_BENCH},   {"reset", YF_CMD_RESET},
};

#define ARG_ERR(msg_)                                                                                          \
    do {                                                                                                       \
        cmd->err_msg = (msg_);                                                                                 \
        return YF_PARSE_ARG;                                                                                   \
    } while (0)

static yf_parse_status_t parse_args(const jparser_t *p, yf_cmd_t *cmd, uint8_t *payload, size_t cap)
{
    int64_t v;
    double x;
    const jtok_t *t;
    switch (cmd->kind) {
    case YF_CMD_SOURCE:
        t = member(p, "src");
        if (t && str_eq(p, t, "mic")) {
            cmd->src = YF_SRC_MIC;
        } else if (t && str_eq(p, t, "host")) {
            cmd->src = YF_SRC_HOST;
        } else {
            ARG_ERR("src must be \"mic\" or \"host\"");
        }
        break;
    case YF_CMD_PCM:
    case YF_CMD_PATCH: {
        if (!tok_int(p, member(p, "seq"), 0, UINT32_MAX, &v)) {
            ARG_ERR("seq must be an integer 0..4294967295");
        }
        cmd->seq = (uint32_t)v;
        bool pcm = cmd->kind == YF_CMD_PCM;
        size_t n = 0;
        if (!tok_b64(p, member(p, pcm ? "d" : "q"), payload, cap, &n)) {
            ARG_ERR(pcm ? "d must be base64 of 1..4096 int16 samples" : "q must be base64 of 6144 int8 values");
        }
        if (pcm ? (n == 0 || n % 2 != 0 || n > 2 * YF_PROTO_MAX_PCM_SAMPLES) : n != YF_PROTO_PATCH_BYTES) {
            ARG_ERR(pcm ? "d must be base64 of 1..4096 int16 samples" : "q must be base64 of 6144 int8 values");
        }
        cmd->data = payload;
        cmd->data_len = n;
        break;
    }
    case YF_CMD_STREAM:
        t = member(p, "scores");
        if (t && !tok_bool(t, &cmd->scores)) {
            ARG_ERR("scores must be true or false");
        }
        t = member(p, "patches");
        if (t && !tok_bool(t, &cmd->patches)) {
            ARG_ERR("patches must be true or false");
        }
        break;
    case YF_CMD_DETECTOR:
        if ((t = member(p, "classes")) != NULL) {
            if (t->type != J_ARR || t->count > YF_PROTO_MAX_CLASSES) {
                ARG_ERR("classes must be an array of at most 32 class indices");
            }
            const jtok_t *e = t + 1;
            for (unsigned i = 0; i < t->count; i++, e = &p->tok[e->next]) {
                if (!tok_int(p, e, 0, 65535, &v)) {
                    ARG_ERR("classes must hold integers 0..65535");
                }
                cmd->classes[i] = (uint16_t)v;
            }
            cmd->n_classes = t->count;
            cmd->det_present |= YF_DET_HAS_CLASSES;
        }
        if ((t = member(p, "threshold")) != NULL) {
            if (!tok_num(p, t, &x) || !(x >= 0.0 && x <= 1.0)) {
                ARG_ERR("threshold must be a number 0..1");
            }
            cmd->threshold = x == 0.0 ? 0.0f : (float)x; /* -0 is 0, as the Python decoder reads it */
            cmd->det_present |= YF_DET_HAS_THRESHOLD;
        }
        if ((t = member(p, "window")) != NULL) {
            if (!tok_int(p, t, 1, 32, &v)) {
                ARG_ERR("window must be an integer 1..32");
            }
            cmd->window = (uint32_t)v;
            cmd->det_present |= YF_DET_HAS_WINDOW;
        }
        if ((t = member(p, "min_count")) != NULL) {
            if (!tok_int(p, t, 1, 65535, &v)) {
                ARG_ERR("min_count must be an integer 1..65535");
            }
            cmd->min_count = (uint32_t)v;
            cmd->det_present |= YF_DET_HAS_MIN_COUNT;
        }
        if ((t = member(p, "refractory_ms")) != NULL) {
            if (!tok_int(p, t, 0, 86400000, &v)) {
                ARG_ERR("refractory_ms must be an integer 0..86400000");
            }
            cmd->refractory_ms = (uint32_t)v;
            cmd->det_present |= YF_DET_HAS_REFRACTORY;
        }
        break;
    case YF_CMD_BENCH:
        if ((t = member(p, "n")) != NULL) {
            if (!tok_int(p, t, 1, 10000, &v)) {
                ARG_ERR("n must be an integer 1..10000");
            }
            cmd->has_n = true;
            cmd->n = (uint32_t)v;
        }
        break;
    default:
        break;
    }
    return YF_PARSE_OK;
}

yf_parse_status_t yf_proto_parse_cmd(const char *json, size_t len, yf_cmd_t *cmd, uint8_t *payload,
                                     size_t payload_cap)
{
    /* The parser state holds 128 tokens (2 KiB): static would not be reentrant, so it lives on the stack. */
    jparser_t p;
    memset(cmd, 0, sizeof(*cmd));
    if (!json || len > YF_PROTO_MAX_LINE || !utf8_valid((const uint8_t *)json, len)) {
        return YF_PARSE_BAD;
    }
    p.s = json;
    p.len = len;
    p.pos = 0;
    p.ntok = 0;
    skip_ws(&p);
    if (p.pos >= len || json[p.pos] != '{' || !parse_value(&p, 1)) {
        return YF_PARSE_BAD;
    }
    skip_ws(&p);
    if (p.pos != len || !keys_unique(&p)) {
        return YF_PARSE_BAD;
    }
    int64_t v;
    const jtok_t *t = member(&p, "t");
    if (!t || !str_eq(&p, t, "cmd") || !tok_int(&p, member(&p, "v"), YF_PROTO_VERSION, YF_PROTO_VERSION, &v)) {
        return YF_PARSE_BAD;
    }
    if (!tok_int(&p, member(&p, "id"), 0, UINT32_MAX, &v)) {
        return YF_PARSE_BAD;
    }
    cmd->id = (uint32_t)v;
    const jtok_t *name = member(&p, "cmd");
    if (!name || name->type != J_STR) {
        return YF_PARSE_BAD;
    }
    copy_name(&p, name, cmd->name, sizeof(cmd->name));
    for (size_t i = 0; i < sizeof(CMDS) / sizeof(CMDS[0]); i++) {
        if (str_eq(&p, name, CMDS[i].name)) {
            cmd->kind = CMDS[i].kind;
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

/* ------------------------------------------------------------------ JSON writer */

static void jw_raw(yf_jw_t *w, const char *s, size_t n)
{
    /* Keep one byte for the NUL that yf_jw_end writes. */
    if (w->overflow || w->len + n + 1 > w->cap) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void jw_cstr(yf_jw_t *w, const char *s)
{
    jw_raw(w, s, strlen(s));
}

static void jw_quoted(yf_jw_t *w, const char *s)
{
    jw_raw(w, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        const char *e = NULL;
        switch (*c) {
        case '"':
            e = "\\\"";
            break;
        case '\\':
            e = "\\\\";
            break;
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\t':
            e = "\\t";
            break;
        case '\b':
            e = "\\b";
            break;
        case '\f':
            e = "\\f";
            break;
        default:
            break;
        }
        if (e) {
            jw_cstr(w, e);
        } else if (*c < 0x20) {
            char u[8];
            snprintf(u, sizeof(u), "\\u%04x", *c);
            jw_cstr(w, u);
        } else {
            jw_raw(w, (const char *)c, 1);
        }
    }
    jw_raw(w, "\"", 1);
}

/* Comma if needed, then "key": (key ignored inside arrays). */
static void jw_key(yf_jw_t *w, const char *key)
{
    uint32_t bit = 1u << w->depth;
    if (w->has_items & bit) {
        jw_raw(w, ",", 1);
    }
    w->has_items |= bit;
    if (key && !(w->depth > 0 && (w->has_items & (1u << (w->depth + 16))))) {
        jw_quoted(w, key);
        jw_raw(w, ":", 1);
    }
}

void yf_jw_begin(yf_jw_t *w, char *buf, size_t cap, const char *type)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->depth = 0;
    w->has_items = 0;
    w->overflow = false;
    jw_cstr(w, YF_PROTO_PREFIX "{");
    yf_jw_str(w, "t", type);
    yf_jw_int(w, "v", YF_PROTO_VERSION);
}

void yf_jw_str(yf_jw_t *w, const char *key, const char *s)
{
    jw_key(w, key);
    jw_quoted(w, s ? s : "");
}

void yf_jw_int(yf_jw_t *w, const char *key, int64_t v)
{
    char tmp[24];
    jw_key(w, key);
    snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
    jw_cstr(w, tmp);
}

void yf_jw_uint(yf_jw_t *w, const char *key, uint64_t v)
{
    char tmp[24];
    jw_key(w, key);
    snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    jw_cstr(w, tmp);
}

void yf_jw_num(yf_jw_t *w, const char *key, double v)
{
    char tmp[32];
    jw_key(w, key);
    if (v != v || v > 1.7976931348623157e308 || v < -1.7976931348623157e308) {
        jw_cstr(w, "null"); /* JSON has no NaN or infinity */
        return;
    }
    snprintf(tmp, sizeof(tmp), "%.9g", v);
    jw_cstr(w, tmp);
}

void yf_jw_bool(yf_jw_t *w, const char *key, bool v)
{
    jw_key(w, key);
    jw_cstr(w, v ? "true" : "false");
}

void yf_jw_b64(yf_jw_t *w, const char *key, const void *data, size_t n)
{
    jw_key(w, key);
    jw_raw(w, "\"", 1);
    size_t need = yf_b64_len(n);
    if (w->overflow || w->len + need + 1 > w->cap) {
        w->overflow = true;
        return;
    }
    w->len += yf_b64_encode(data, n, w->buf + w->len, need);
    jw_raw(w, "\"", 1);
}

/* has_items bit d+16 marks the container at depth d as an array (its items have no keys). */
static void jw_open(yf_jw_t *w, const char *key, bool arr)
{
    jw_key(w, key);
    if (w->depth + 1 >= YF_JW_MAX_DEPTH) {
        w->overflow = true;
        return;
    }
    jw_raw(w, arr ? "[" : "{", 1);
    w->depth++;
    w->has_items &= ~((1u << w->depth) | (1u << (w->depth + 16)));
    if (arr) {
        w->has_items |= 1u << (w->depth + 16);
    }
}

void yf_jw_obj(yf_jw_t *w, const char *key)
{
    jw_open(w, key, false);
}

void yf_jw_arr(yf_jw_t *w, const char *key)
{
    jw_open(w, key, true);
}

void yf_jw_close(yf_jw_t *w)
{
    if (w->depth == 0) {
        w->overflow = true; /* unbalanced: refuse the line rather than send nonsense */
        return;
    }
    jw_raw(w, (w->has_items & (1u << (w->depth + 16))) ? "]" : "}", 1);
    w->depth--;
}

size_t yf_jw_end(yf_jw_t *w)
{
    while (w->depth > 0) {
        yf_jw_close(w);
    }
    jw_raw(w, "}\n", 2);
    if (w->overflow || w->len > YF_PROTO_MAX_LINE) {
        if (w->cap > 0) {
            w->buf[0] = '\0';
        }
        return 0;
    }
    w->buf[w->len] = '\0';
    return w->len;
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

size_t yf_proto_stats(char *buf, size_t cap, const yf_stats_t *s)
{
    yf_jw_t w;
    yf_jw_begin(&w, buf, cap, "stats");
    yf_jw_uint(&w, "uptime_ms", s->uptime_ms);
    yf_jw_uint(&w, "inferences", s->inferences);
    yf_jw_uint(&w, "dropped_samples", s->dropped_samples);
    yf_jw_uint(&w, "bad_lines", s->bad_lines);
    yf_jw_uint(&w, "heap_free", s->heap_free);
    yf_jw_uint(&w, "heap_min", s->heap_min);
    yf_jw_uint(&w, "psram_free", s->psram_free);
    yf_jw_uint(&w, "psram_min", s->psram_min);
    yf_jw_obj(&w, "stack_hwm");
    for (size_t i = 0; i < s->n_tasks; i++) {
        yf_jw_uint(&w, s->task_names[i], s->task_hwm[i]);
    }
    yf_jw_close(&w);
    arena_fields(&w, s->arena_size, s->arena_used, s->arena_where);
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

/* In-place heapsort: O(n log n) for bench runs of thousands of samples, no recursion, no memory. */
static void sift_down(uint32_t *a, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) {
            return;
        }
        if (child + 1 < n && a[child + 1] > a[child]) {
            child++;
        }
        if (a[root] >= a[child]) {
            return;
        }
        uint32_t t = a[root];
        a[root] = a[child];
        a[child] = t;
        root = child;
    }
}

/* Nearest-rank percentile of sorted a[n]: the smallest value with at least p% of samples at or below it. */
static uint32_t percentile(const uint32_t *a, size_t n, unsigned p)
{
    size_t rank = ((size_t)p * n + 99) / 100;
    return a[rank == 0 ? 0 : rank - 1];
}

void yf_bench_summarize(uint32_t *us, size_t n, yf_bench_summary_t *out)
{
    memset(out, 0, sizeof(*out));
    if (n == 0) {
        return;
    }
    for (size_t i = n / 2; i-- > 0;) {
        sift_down(us, i, n);
    }
    for (size_t end = n - 1; end > 0; end--) {
        uint32_t t = us[0];
        us[0] = us[end];
        us[end] = t;
        sift_down(us, 0, end);
    }
    double sum = 0.0, sq = 0.0;
    for (size_t i = 0; i < n; i++) {
        sum += us[i];
    }
    double mean = sum / (double)n;
    for (size_t i = 0; i < n; i++) {
        sq += (us[i] - mean) * (us[i] - mean);
    }
    out->n = (uint32_t)n;
    out->mean = mean;
    out->std = n > 1 ? sqrt(sq / (double)n) : 0.0;
    out->min = us[0];
    out->max = us[n - 1];
    out->p50 = percentile(us, n, 50);
    out->p90 = percentile(us, n, 90);
    out->p99 = percentile(us, n, 99);
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
