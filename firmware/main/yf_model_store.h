/* Where the model comes from: a SPIFFS file copied into PSRAM, or a raw partition memory-mapped in place.
 * Either way its size and sha256 are checked against the generated header before TFLite Micro sees it. */
#ifndef YF_MODEL_STORE_H
#define YF_MODEL_STORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const uint8_t *data; /* 16-byte aligned flatbuffer */
    size_t bytes;
    const char *where; /* "psram" (copied from SPIFFS) or "flash-mmap" */
} yf_model_t;

/* Load and verify the model; returns 0, or -1 with a one-line reason in err (for an E_MODEL event). */
int yf_model_load(yf_model_t *out, char *err, size_t err_cap);

#ifdef __cplusplus
}
#endif
#endif
