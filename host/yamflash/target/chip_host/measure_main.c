/* chip_build.measure_32bit: yf_infer_init on a model file, as a program, so the build can be compiled for a
 * 32-bit target (-m32: the chip's pointer and size_t widths) that a 64-bit Python cannot load. Prints
 * rc=, used=, size= and the pointer width it was built for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yf_inference.h"

void yfh_heap_config(size_t internal, size_t psram);

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s model.tflite psram_bytes\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) return 2;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *model = aligned_alloc(16, ((size_t)n + 15) / 16 * 16);
    if (model == NULL || fread(model, 1, (size_t)n, f) != (size_t)n) return 2;
    fclose(f);
    yfh_heap_config(0, (size_t)strtoull(argv[2], NULL, 10));
    char err[256] = "";
    const int rc = yf_infer_init(model, err, sizeof err);
    yf_infer_info_t info;
    yf_infer_info(&info);
    printf("rc=%d used=%zu size=%zu pointer=%zu\n", rc, info.arena_used, info.arena_size, sizeof(void *));
    free(model);
    return 0;
}
