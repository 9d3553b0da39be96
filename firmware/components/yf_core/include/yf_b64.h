/* yf_b64: base64 (RFC 4648, standard alphabet, padded), strict as Python's codec in the protocol: length a
 * multiple of 4, '=' only as final padding, spare bits zero. The streaming decoder takes one character at a
 * time, so the JSON reader can decode straight from an escaped string. No allocation. */
#ifndef YF_B64_H
#define YF_B64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Characters base64 needs for n bytes. */
size_t yf_b64_len(size_t n);

/* Encode n bytes into dst (no NUL written); returns characters written, or 0 when cap is too small. */
size_t yf_b64_encode(const void *src, size_t n, char *dst, size_t cap);

/* Decode strictly; returns 0 and sets *out_len, or -1 on invalid input or when the result exceeds cap. */
int yf_b64_decode(const char *src, size_t len, uint8_t *dst, size_t cap, size_t *out_len);

/* Streaming decoder state: init, put characters (code points; anything outside base64 makes it bad), finish. */
typedef struct {
    uint8_t *dst;
    size_t cap, len;
    uint32_t quad[4];
    unsigned nq;
    bool padded; /* a quad with '=' was seen: nothing may follow */
    bool bad;
} yf_b64_dec_t;

void yf_b64_dec_init(yf_b64_dec_t *d, uint8_t *dst, size_t cap);
void yf_b64_dec_put(yf_b64_dec_t *d, uint32_t c);
/* 0 and *out_len, or -1 when the text was not canonical base64 or did not fit. */
int yf_b64_dec_finish(const yf_b64_dec_t *d, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
