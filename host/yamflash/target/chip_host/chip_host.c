/* What ESP-IDF provides to yf_inference.cpp and the ESP-NN kernels, emulated on the host (chip_arena.py):
 *
 * - heap_caps_*: two regions, internal RAM and PSRAM, with the capacities the caller configures from the
 *   board profile. An allocation that does not fit the region's free bytes fails (NULL), as on the chip;
 *   the largest free block is the free bytes (no fragmentation is modelled).
 * - esp_timer_get_time and ESP_LOGx (into a buffer the host reads).
 * - The ESP32-S3 scratch-size wrappers named by include/esp_nn.h: each calls esp-nn's own
 *   esp_nn_get_*_scratch_size_esp32s3 and records the request (shapes and bytes).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "esp_heap_caps.h"
#include "esp_log.h"
#include "esp_nn.h"
#include "esp_timer.h"

/* YF_ARENA_BYTES / YF_ARENA_INTERNAL of a build whose yf_model_params.h makes them variables
 * (chip_arena.variable_arena); unused by a build against the generated header as it is. */
size_t yfh_arena_bytes;
int yfh_arena_internal;

/* ---- heap ------------------------------------------------------------------------------------------ */

enum { REGION_INTERNAL = 0, REGION_PSRAM = 1, MAX_BLOCKS = 64 };

static size_t s_cap[2], s_used[2], s_peak[2];
static struct {
    void *ptr;
    size_t size;
    int region;
} s_blocks[MAX_BLOCKS];
static size_t s_failed_size;
static int s_failed_region = -1;

void yfh_heap_config(size_t internal, size_t psram) {
    s_cap[REGION_INTERNAL] = internal;
    s_cap[REGION_PSRAM] = psram;
}

size_t yfh_heap_used(int region) { return region == 0 || region == 1 ? s_used[region] : 0; }
size_t yfh_heap_peak(int region) { return region == 0 || region == 1 ? s_peak[region] : 0; }

/* The last allocation that did not fit: its size and region (-1: none). */
size_t yfh_heap_failed(int *region) {
    *region = s_failed_region;
    return s_failed_size;
}

static int region_of(uint32_t caps) {
    if (caps & MALLOC_CAP_SPIRAM) return REGION_PSRAM;
    return REGION_INTERNAL; /* MALLOC_CAP_INTERNAL, or a plain 8-bit request (internal first on the chip) */
}

void *heap_caps_aligned_alloc(size_t alignment, size_t size, uint32_t caps) {
    const int r = region_of(caps);
    if (size == 0 || size > s_cap[r] - s_used[r]) {
        s_failed_size = size;
        s_failed_region = r;
        return NULL;
    }
    for (int i = 0; i < MAX_BLOCKS; ++i) {
        if (s_blocks[i].ptr != NULL) continue;
        const size_t rounded = (size + alignment - 1) / alignment * alignment;
        void *p = aligned_alloc(alignment, rounded);
        if (p == NULL) return NULL;
        memset(p, 0xA5, rounded); /* the chip's heap hands out uninitialised memory; do not hide reads of it */
        s_blocks[i].ptr = p;
        s_blocks[i].size = size;
        s_blocks[i].region = r;
        s_used[r] += size;
        if (s_used[r] > s_peak[r]) s_peak[r] = s_used[r];
        return p;
    }
    return NULL;
}

void *heap_caps_malloc(size_t size, uint32_t caps) { return heap_caps_aligned_alloc(16, size, caps); }

void heap_caps_free(void *ptr) {
    if (ptr == NULL) return;
    for (int i = 0; i < MAX_BLOCKS; ++i) {
        if (s_blocks[i].ptr == ptr) {
            s_used[s_blocks[i].region] -= s_blocks[i].size;
            s_blocks[i].ptr = NULL;
            free(ptr);
            return;
        }
    }
    abort(); /* freeing what this heap did not hand out: a bug the chip would also crash on */
}

size_t heap_caps_get_free_size(uint32_t caps) {
    const int r = region_of(caps);
    return s_cap[r] - s_used[r];
}

size_t heap_caps_get_largest_free_block(uint32_t caps) { return heap_caps_get_free_size(caps); }

/* ---- timer and log --------------------------------------------------------------------------------- */

int64_t esp_timer_get_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static char s_log[8192];
static size_t s_log_len;

void yfh_log(char level, const char *tag, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    const int n = snprintf(s_log + s_log_len, sizeof s_log - s_log_len, "%c (%lld) %s: %s\n", level,
                           (long long)(esp_timer_get_time() / 1000), tag, line);
    if (n > 0) s_log_len += (size_t)n < sizeof s_log - s_log_len ? (size_t)n : sizeof s_log - 1 - s_log_len;
}

const char *yfh_log_read(void) { return s_log; }

/* ---- ESP32-S3 scratch requests ---------------------------------------------------------------------- */

typedef struct {
    int32_t kind; /* 0 conv, 1 depthwise conv, 2 softmax */
    int32_t in_w, in_h, in_c;
    int32_t f_w, f_h;
    int32_t out_w, out_h, out_c;
    int32_t stride_w, stride_h, pad_w, pad_h, ch_mult;
    int32_t bytes;
} yfh_scratch_t;

enum { MAX_SCRATCH = 2048 }; /* a rewritten YAMNet (chip/rewrite.py) makes ~270 requests */
static yfh_scratch_t s_scratch[MAX_SCRATCH];
static int s_n_scratch;

static void record(yfh_scratch_t r) {
    if (s_n_scratch < MAX_SCRATCH) s_scratch[s_n_scratch] = r;
    s_n_scratch++; /* counts past the table too, so an overflow shows as count > MAX_SCRATCH */
}

int yfh_scratch_count(void) { return s_n_scratch; }

int yfh_scratch_get(int i, yfh_scratch_t *out) {
    if (i < 0 || i >= s_n_scratch || i >= MAX_SCRATCH) return -1;
    *out = s_scratch[i];
    return 0;
}

int yfh_conv_scratch_size(const data_dims_t *in, const data_dims_t *f, const data_dims_t *out,
                          const conv_params_t *p) {
    const int n = esp_nn_get_conv_scratch_size_esp32s3(in, f, out, p);
    record((yfh_scratch_t){0, in->width, in->height, in->channels, f->width, f->height, out->width, out->height,
                           out->channels, p->stride.width, p->stride.height, p->padding.width, p->padding.height, 1,
                           n});
    return n;
}

int yfh_depthwise_conv_scratch_size(const data_dims_t *in, const data_dims_t *f, const data_dims_t *out,
                                    const dw_conv_params_t *p) {
    const int n = esp_nn_get_depthwise_conv_scratch_size_esp32s3(in, f, out, p);
    record((yfh_scratch_t){1, in->width, in->height, in->channels, f->width, f->height, out->width, out->height,
                           out->channels, p->stride.width, p->stride.height, p->padding.width, p->padding.height,
                           p->ch_mult, n});
    return n;
}

int32_t yfh_softmax_scratch_size(const int32_t width, const int32_t height) {
    const int32_t n = esp_nn_get_softmax_scratch_size_esp32s3(width, height);
    record((yfh_scratch_t){2, width, height, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, n});
    return n;
}
