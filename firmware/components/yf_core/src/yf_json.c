/* JSON for the protocol, read (command subset) and written (bounded lines): see yf_json.h.
 *
 * The reader must accept and reject exactly what host/yamflash/board/protocol.py does (both run the vectors in
 * tests/vectors/protocol), so it follows Python's json module where the spec is silent: strict UTF-8,
 * all JSON escapes, string comparison after unescaping, duplicate keys rejected.
 */
#include "yf_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yf_b64.h"

/* ------------------------------------------------------------------ reader */

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

static void skip_ws(yf_json_t *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            break;
        }
        p->pos++;
    }
}

static int new_tok(yf_json_t *p, uint8_t type, size_t start)
{
    if (p->ntok >= YF_PROTO_MAX_TOKENS) {
        return -1;
    }
    yf_jtok_t *t = &p->tok[p->ntok];
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

static bool parse_string(yf_json_t *p)
{
    size_t i = p->pos + 1; /* after the opening quote */
    int t = new_tok(p, YF_J_STR, i);
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

static bool parse_number(yf_json_t *p)
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
    int t = new_tok(p, YF_J_NUM, start);
    if (t < 0) {
        return false;
    }
    p->tok[t].end = (uint16_t)i;
    p->tok[t].is_int = is_int;
    p->tok[t].next = (uint16_t)p->ntok;
    p->pos = i;
    return true;
}

static bool parse_literal(yf_json_t *p, const char *word, uint8_t type)
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

static bool parse_value(yf_json_t *p, unsigned depth);

static bool parse_container(yf_json_t *p, unsigned depth, bool is_obj)
{
    if (depth > YF_PROTO_MAX_DEPTH) {
        return false;
    }
    int t = new_tok(p, is_obj ? YF_J_OBJ : YF_J_ARR, p->pos);
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
static bool parse_value(yf_json_t *p, unsigned depth)
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
        return parse_literal(p, "true", YF_J_TRUE);
    case 'f':
        return parse_literal(p, "false", YF_J_FALSE);
    case 'n':
        return parse_literal(p, "null", YF_J_NULL);
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

static cp_iter_t str_iter(const yf_json_t *p, const yf_jtok_t *t)
{
    cp_iter_t it = {p->s, t->start, t->end};
    return it;
}

bool yf_json_str_eq(const yf_json_t *p, const yf_jtok_t *t, const char *lit)
{
    if (t->type != YF_J_STR) {
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

static bool str_tok_eq(const yf_json_t *p, const yf_jtok_t *a, const yf_jtok_t *b)
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
static bool keys_unique(const yf_json_t *p)
{
    for (unsigned o = 0; o < p->ntok; o++) {
        if (p->tok[o].type != YF_J_OBJ) {
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
const yf_jtok_t *yf_json_member(const yf_json_t *p, const char *key)
{
    for (unsigned k = 1; k < p->tok[0].next; k = p->tok[p->tok[k].next].next) {
        if (yf_json_str_eq(p, &p->tok[k], key)) {
            return &p->tok[k + 1];
        }
    }
    return NULL;
}

/* Integer value of a number token within [lo, hi]. */
bool yf_json_int(const yf_json_t *p, const yf_jtok_t *t, int64_t lo, int64_t hi, int64_t *out)
{
    if (!t || t->type != YF_J_NUM || !t->is_int) {
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

bool yf_json_num(const yf_json_t *p, const yf_jtok_t *t, double *out)
{
    if (!t || t->type != YF_J_NUM) {
        return false;
    }
    char tmp[YF_PROTO_MAX_NUMBER + 1];
    size_t n = (size_t)(t->end - t->start);
    memcpy(tmp, p->s + t->start, n);
    tmp[n] = '\0';
    *out = strtod(tmp, NULL); /* the grammar was checked already; strtod only converts */
    return true;
}

bool yf_json_bool(const yf_jtok_t *t, bool *out)
{
    if (!t || (t->type != YF_J_TRUE && t->type != YF_J_FALSE)) {
        return false;
    }
    *out = t->type == YF_J_TRUE;
    return true;
}

bool yf_json_b64(const yf_json_t *p, const yf_jtok_t *t, uint8_t *dst, size_t cap, size_t *out_len)
{
    if (!t || t->type != YF_J_STR) {
        return false;
    }
    if (!t->escaped) {
        return yf_b64_decode(p->s + t->start, (size_t)(t->end - t->start), dst, cap, out_len) == 0;
    }
    yf_b64_dec_t d;
    yf_b64_dec_init(&d, dst, cap);
    cp_iter_t it = str_iter(p, t);
    for (long c; (c = cp_next(&it)) >= 0 && !d.bad;) {
        yf_b64_dec_put(&d, c < 128 ? (uint32_t)c : 0u); /* 0 is no base64 character */
    }
    return yf_b64_dec_finish(&d, out_len) == 0;
}

void yf_json_copy_ascii(const yf_json_t *p, const yf_jtok_t *t, char *dst, size_t cap)
{
    size_t o = 0;
    cp_iter_t it = str_iter(p, t);
    for (long c; (c = cp_next(&it)) >= 0 && o + 1 < cap;) {
        dst[o++] = (c >= 0x20 && c < 0x7F) ? (char)c : '?'; /* the echo is for people: ASCII is enough */
    }
    dst[o] = '\0';
}

const yf_jtok_t *yf_json_next(const yf_json_t *p, const yf_jtok_t *t)
{
    return &p->tok[t->next];
}

bool yf_json_parse(yf_json_t *p, const char *s, size_t len)
{
    if (!s || len > YF_PROTO_MAX_LINE || !utf8_valid((const uint8_t *)s, len)) {
        return false;
    }
    p->s = s;
    p->len = len;
    p->pos = 0;
    p->ntok = 0;
    skip_ws(p);
    if (p->pos >= len || s[p->pos] != '{' || !parse_value(p, 1)) {
        return false;
    }
    skip_ws(p);
    return p->pos == len && keys_unique(p);
}

/* ------------------------------------------------------------------ writer */

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
