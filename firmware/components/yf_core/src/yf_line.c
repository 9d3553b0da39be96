/* The line assembler: see yf_line.h. */
#include "yf_line.h"

#include <string.h>

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
