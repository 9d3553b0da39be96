/* Runs pieces of firmware/main on the host against the stand-ins of fakes.c and prints what happened, for
 * tests/test_firmware_units.py:
 *   driver emit-before-init          yf_emit_err before yf_tasks_init created its lock (boot failure path)
 *   driver tasks BENCH_N PATCHES     the inference task on a bench job of BENCH_N Invokes, then PATCHES
 *                                    streamed patches; prints the created tasks and the trace
 *   driver load [FILE]               yf_model_load: SPIFFS reads FILE (env FK_MODEL_FILE), partition maps
 *                                    FILE as the partition's bytes */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fakes.h"
#include "yf_app.h"
#include "yf_model_store.h"

static const char *s_model_file;

/* Linked with -Wl,--wrap=fopen,--wrap=stat,--wrap=fread: the firmware's SPIFFS path names a file on the
 * chip's VFS; here it is the test's file, and every read is traced. */
FILE *__real_fopen(const char *path, const char *mode);
int __real_stat(const char *path, struct stat *st);
size_t __real_fread(void *dst, size_t size, size_t n, FILE *f);

FILE *__wrap_fopen(const char *path, const char *mode)
{
    return __real_fopen(strcmp(path, "/model/model.tflite") == 0 ? s_model_file : path, mode);
}

int __wrap_stat(const char *path, struct stat *st)
{
    return __real_stat(strcmp(path, "/model/model.tflite") == 0 ? s_model_file : path, st);
}

size_t __wrap_fread(void *dst, size_t size, size_t n, FILE *f)
{
    size_t len = strlen(fk_trace);
    snprintf(fk_trace + len, sizeof fk_trace - len, "R%zu ", size * n);
    return __real_fread(dst, size, n, f);
}

static int run_tasks(uint32_t bench_n, uint32_t patches)
{
    if (yf_tasks_init() != 0) {
        puts("init failed");
        return 1;
    }
    yf_tasks_start();
    void (*inference)(void *) = NULL;
    for (int i = 0; i < fk_n_tasks; ++i) {
        printf("task %s core=%d prio=%u stack=%u\n", fk_tasks[i].name, fk_tasks[i].core, fk_tasks[i].prio,
               (unsigned)fk_tasks[i].stack);
        if (strcmp(fk_tasks[i].name, "yf_inference") == 0) {
            inference = fk_tasks[i].fn;
        }
    }
    g_app.model_ok = true;
    if (bench_n > 0) {
        yf_job_t j = {.kind = YF_JOB_BENCH, .id = 7, .n = bench_n};
        xQueueSend(g_app.jobs, &j, 0);
    }
    for (uint32_t p = 0; p < patches; ++p) {
        uint32_t slot;
        if (xQueueReceive(g_app.free_slots, &slot, 0) != pdTRUE) {
            puts("no free slot");
            return 1;
        }
        yf_job_t j = {.kind = YF_JOB_PATCH, .slot = slot, .patch = p};
        xQueueSend(g_app.jobs, &j, 0);
    }
    fk_trace[0] = '\0';
    if (setjmp(fk_stop) == 0) {
        inference(NULL); /* returns through fk_stop once the job queue is empty */
    }
    printf("trace %s\n", fk_trace);
    printf("lines %s", fk_lines);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "emit-before-init") == 0) {
        yf_emit_err("E_ALLOC", "cannot allocate the task queues and buffers");
        printf("lines %s", fk_lines);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "tasks") == 0) {
        return run_tasks((uint32_t)atoi(argv[2]), (uint32_t)atoi(argv[3]));
    }
    if (argc == 3 && strcmp(argv[1], "load") == 0) {
        s_model_file = argv[2];
        static uint8_t *flash;
        FILE *f = __real_fopen(argv[2], "rb");
        if (f == NULL) {
            return 2;
        }
        fseek(f, 0, SEEK_END);
        fk_flash_bytes = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        flash = malloc(fk_flash_bytes);
        if (__real_fread(flash, 1, fk_flash_bytes, f) != fk_flash_bytes) {
            return 2;
        }
        fclose(f);
        fk_flash = flash;
        fk_part_address = 0x410000;
        yf_model_t m = {0};
        char err[256];
        const int rc = yf_model_load(&m, err, sizeof err);
        printf("rc %d\nwhere %s\nbytes %zu\noffset %td\nerr %s\ntrace %s\n", rc, m.where ? m.where : "-", m.bytes,
               m.data != NULL && m.data >= fk_flash && m.data < fk_flash + fk_flash_bytes ? m.data - fk_flash : -1,
               err, fk_trace);
        if (rc == 0 && strcmp(m.where, "psram") == 0) {
            free((void *)m.data); /* the SPIFFS copy (heap_caps_aligned_alloc) */
        }
        free(flash);
        return 0;
    }
    fprintf(stderr, "usage: driver emit-before-init | tasks BENCH_N PATCHES | load FILE\n");
    return 2;
}
