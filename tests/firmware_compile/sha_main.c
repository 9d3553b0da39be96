/* yf_sha256.c on the host (tests/test_firmware_units.py): `sha_main FILE CHUNK` copies FILE through
 * yf_copy_hashed in CHUNK-byte reads and prints the sha256, the reads and the yields in order;
 * `sha_main FILE CHUNK short` makes the last read come up one byte short. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yf_sha256.h"

typedef struct {
    FILE *f;
    size_t left; /* bytes before a read is cut short (SIZE_MAX: never) */
} src_t;

static void yield(void)
{
    fputs("Y ", stdout);
}

static size_t read_file(void *ctx, uint8_t *dst, size_t n)
{
    src_t *s = ctx;
    const size_t want = n > s->left ? s->left : n;
    s->left -= want;
    printf("R%zu ", n);
    return fread(dst, 1, want, s->f);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) {
        return 2;
    }
    fseek(f, 0, SEEK_END);
    const size_t total = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    src_t s = {f, argc > 3 ? total - 1 : (size_t)-1};
    uint8_t *dst = malloc(total ? total : 1);
    uint8_t sha[YF_SHA256_BYTES] = {0};
    const int rc = yf_copy_hashed(dst, total, (size_t)atol(argv[2]), read_file, &s, yield, sha);
    printf("\nrc %d\nsha ", rc);
    for (int i = 0; i < YF_SHA256_BYTES; ++i) {
        printf("%02x", sha[i]);
    }
    /* The copy is the file, byte for byte. */
    fseek(f, 0, SEEK_SET);
    uint8_t *again = malloc(total ? total : 1);
    const size_t got = fread(again, 1, total, f);
    printf("\ncopy %s\n", rc == 0 && got == total && memcmp(dst, again, total) == 0 ? "same" : "differs");
    free(again);
    free(dst);
    fclose(f);
    return 0;
}
