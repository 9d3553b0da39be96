/* Base64 for the protocol's payloads: see yf_b64.h. */
#include "yf_b64.h"

#include <string.h>

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

void yf_b64_dec_put(yf_b64_dec_t *d, uint32_t c)
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

void yf_b64_dec_init(yf_b64_dec_t *d, uint8_t *dst, size_t cap)
{
    memset(d, 0, sizeof(*d));
    d->dst = dst;
    d->cap = cap;
}

int yf_b64_dec_finish(const yf_b64_dec_t *d, size_t *out_len)
{
    if (d->bad || d->nq != 0) {
        return -1;
    }
    *out_len = d->len;
    return 0;
}

int yf_b64_decode(const char *src, size_t len, uint8_t *dst, size_t cap, size_t *out_len)
{
    yf_b64_dec_t d;
    yf_b64_dec_init(&d, dst, cap);
    for (size_t i = 0; i < len && !d.bad; i++) {
        yf_b64_dec_put(&d, (uint8_t)src[i]);
    }
    return yf_b64_dec_finish(&d, out_len);
}
