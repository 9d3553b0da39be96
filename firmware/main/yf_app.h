/* Shared state of the ESP-IDF glue: the handful of values the tasks exchange. All logic lives in yf_core. */
#ifndef YF_APP_H
#define YF_APP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "freertos/semphr.h"
#include "freertos/stream_buffer.h"
#include "yf_core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define YF_PCM_RING_BYTES (16000 * 2 * 2) /* 2 s of int16 audio between capture and frontend */
#define YF_PATCH_SLOTS 3                  /* quantized patches waiting for inference */
#define YF_OUT_LINE_MAX YF_PROTO_MAX_LINE

/* Jobs for the inference task: it alone owns the interpreter and the detector state. */
typedef enum { YF_JOB_PATCH = 0, YF_JOB_HOST_PATCH, YF_JOB_BENCH } yf_job_kind_t;

typedef struct {
    yf_job_kind_t kind;
    uint32_t slot;     /* YF_JOB_PATCH: index into g_app.patches */
    uint32_t patch;    /* patch number */
    int64_t t_ready;   /* esp_timer time the patch's last audio was taken from the ring */
    uint32_t fe_us;    /* mean frontend time per frame over this patch */
    uint32_t id, seq;  /* host commands */
    uint32_t n;        /* bench */
    bool seq_gap;      /* host patch: seq did not follow the previous one */
    uint32_t expected; /* the seq that was expected */
} yf_job_t;

typedef struct {
    /* model + interpreter (filled at boot) */
    bool model_ok;
    const uint8_t *model;
    size_t model_bytes;
    /* audio path */
    StreamBufferHandle_t pcm_ring;
    SemaphoreHandle_t pcm_write_lock; /* the stream buffer wants one writer at a time */
    QueueHandle_t jobs;               /* yf_job_t, to the inference task */
    QueueHandle_t free_slots;         /* uint32_t slot indices the frontend may fill */
    int8_t patches[YF_PATCH_SLOTS][YF_PROTO_PATCH_BYTES];
    int8_t host_patch[YF_PROTO_PATCH_BYTES]; /* a patch received over the protocol */
    SemaphoreHandle_t host_patch_free;        /* given by the inference task when host_patch is consumed */
    atomic_int src;                           /* yf_src_t */
    atomic_bool restart_audio;                /* frontend: drop buffered audio and restart patch numbering */
    SemaphoreHandle_t restart_done;           /* given by the frontend once it has restarted */
    atomic_bool stream_scores, stream_patches;
    atomic_uint dropped_samples;
    atomic_uint inferences;
    atomic_uint skipped_patches;
    /* detector, shared by the console (config) and inference (push) tasks */
    SemaphoreHandle_t det_lock;
    yf_detect_t det;
    /* counters the console owns */
    uint32_t bad_lines;
    uint32_t host_pcm_seq, host_patch_seq;
    bool host_pcm_seen, host_patch_seen;
} yf_app_t;

extern yf_app_t g_app;

/* Stack high-water marks of the tasks, for stats. */
#define YF_NUM_TASKS 4
extern const char *const yf_task_names[YF_NUM_TASKS];
uint32_t yf_task_hwm(size_t i);

/* Tasks (yf_tasks.c, yf_audio.c). */
/* Create queues, buffers, frontend and detector state; returns 0 or -1. */
int yf_tasks_init(void);
void yf_tasks_start(void);
int yf_audio_start(void);
uint32_t yf_audio_task_hwm(void);

/* Boot results main hands to the tasks (for hello/info). */
typedef struct {
    const char *model_where; /* "psram" | "flash-mmap" | "none" */
    const char *fw;
} yf_boot_t;
extern yf_boot_t g_boot;

/* Write a protocol line built by yf_core (len 0 = encoder overflow: dropped). */
void yf_emit(const char *line, size_t len);
/* Emit an `err` event. */
void yf_emit_err(const char *code, const char *msg);
/* Emit `hello`. */
void yf_emit_hello(void);

#ifdef __cplusplus
}
#endif
#endif
