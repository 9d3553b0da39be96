/* SHA-256 (FIPS 180-4) in portable C99, and a chunked copy that hashes as it reads and yields between
 * chunks. Used for the SPIFFS model, whose bytes only exist in RAM once read: ESP-IDF v5.5 offers no public
 * RAM SHA-256 outside mbedtls (removed from the app API in 6.0); the memory-mapped partition is hashed by
 * ESP-IDF itself (bootloader_common_get_sha256_of_partition, hardware SHA). No ESP-IDF header here, so the
 * host tests build and check it (tests/test_firmware_units.py). */
#ifndef YF_SHA256_H
#define YF_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define YF_SHA256_BYTES 32

typedef struct {
    uint32_t h[8];
    uint64_t total; /* bytes hashed so far */
    uint8_t block[64];
    size_t fill; /* bytes waiting in block */
} yf_sha256_t;

void yf_sha256_init(yf_sha256_t *s);
void yf_sha256_update(yf_sha256_t *s, const void *data, size_t len);
void yf_sha256_final(yf_sha256_t *s, uint8_t out[YF_SHA256_BYTES]);

/* Reads up to n bytes into dst; returns how many it read (fewer: end of data or error). */
typedef size_t (*yf_read_fn)(void *ctx, uint8_t *dst, size_t n);

/* Copy `total` bytes from `read` into `dst`, at most `chunk` bytes per read, hashing each chunk into
 * `sha_out` and calling `yield` (may be NULL) after each one, so a long load leaves the CPU to lower-priority
 * tasks in between. Returns 0, or -1 when a read comes up short or chunk is 0. */
int yf_copy_hashed(uint8_t *dst, size_t total, size_t chunk, yf_read_fn read, void *ctx, void (*yield)(void),
                   uint8_t sha_out[YF_SHA256_BYTES]);

#ifdef __cplusplus
}
#endif
#endif
