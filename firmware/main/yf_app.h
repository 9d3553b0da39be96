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
#include "freertos/task.h"
#include "yf_core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define YF_PCM_RING_BYTES (16000 * 2 * 2) /* 2 s of int16 audio between capture and frontend */
#define YF_PATCH_SLOTS 3                  /* quantized patches waiting for inference */
#define YF_OUT_LINE_MAX YF_PROTO_MAX_LINE
#define YF_MISC_LINE_MAX 2048             /* err and hello lines (their longest is ~700 bytes) */

/* Tasks (firmware/README.md "Tasks"). Stack sizes are in bytes: ESP-IDF's StackType_t is uint8_t. The
 * capture task's numbers are in yf_audio.c. */
#define YF_TASK_FRONTEND_STACK 6144
#define YF_TASK_FRONTEND_PRIO 8
#define YF_TASK_FRONTEND_CORE 0
#define YF_TASK_INFERENCE_STACK 8192
#define YF_TASK_INFERENCE_PRIO 5
#define YF_TASK_INFERENCE_CORE 1
#define YF_TASK_CONSOLE_STACK 6144
#define YF_TASK_CONSOLE_PRIO 4
#define YF_TASK_CONSOLE_CORE 0

/* Timeouts, in ms. */
#define YF_RING_WAIT_MS 50         /* frontend: wait for audio before checking for a restart */
#define YF_HOST_PCM_WAIT_MS 2000   /* pcm command: room in the ring */
#define YF_HOST_PATCH_WAIT_MS 5000 /* patch command: the previous host patch inferred */
#define YF_RESTART_WAIT_MS 1000    /* source command: the frontend dropped old audio */
#define YF_CONSOLE_READ_MS 100     /* console: longest wait for input before stats are due */
#define YF_RESET_REPLY_MS 100      /* reset command: time for the reply to leave */

#define YF_CONSOLE_RX_BYTES 1024                       /* bytes read from the console at a time */
#define YF_STATS_PERIOD_US (YF_PROTO_STATS_PERIOD_MS * 1000LL)
#define YF_BUSY_REPORT_PATCHES 10                      /* at most one "inference is behind" err per 10 patches (~5 s) */
#define YF_MAX_EVENTS 8                                /* detections one patch may fire */

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
    atomic_uint skipped_patches;              /* stats' patches_skipped: inference was still busy */
    /* detector, shared by the console (config) and inference (push) tasks */
    SemaphoreHandle_t det_lock;
    yf_detect_t det;
} yf_app_t;

extern yf_app_t g_app;

/* Stack high-water marks of the tasks, for stats. */
#define YF_NUM_TASKS 4
extern const char *const yf_task_names[YF_NUM_TASKS];
uint32_t yf_task_hwm(size_t i);

/* Tasks (yf_tasks.c: frontend, inference; yf_commands.c: console; yf_audio.c: capture). */
/* Create queues, buffers, frontend and detector state; returns 0 or -1. */
int yf_tasks_init(void);
void yf_tasks_start(void);
/* The console's share of yf_tasks_init (the protocol device) and of yf_tasks_start (its task). */
int yf_commands_init(void);
void yf_commands_start(TaskHandle_t *task);
/* Hand a job to the inference task. */
void yf_tasks_submit(const yf_job_t *j);
int yf_audio_start(void);
uint32_t yf_audio_task_hwm(void);

/* Boot results main hands to the tasks (for hello/info). */
typedef struct {
    const char *model_where; /* "psram" | "flash-mmap" | "none" */
    const char *fw;
} yf_boot_t;
extern yf_boot_t g_boot;

/* Memory for a buffer: PSRAM when there is some, else internal RAM; NULL if neither has room. */
void *yf_alloc_prefer_psram(size_t n);
/* What hello and the info reply report (yf_app.c). */
void yf_fill_hello(yf_hello_t *h);
const char *yf_src_name(void);

/* Write a protocol line built by yf_core (len 0 = encoder overflow: dropped). */
void yf_emit(const char *line, size_t len);
/* Emit an `err` event. */
void yf_emit_err(const char *code, const char *msg);
/* Emit `hello`. */
void yf_emit_hello(void);
/* Create the lock err and hello lines share; returns 0 or -1. */
int yf_app_init(void);

#ifdef __cplusplus
}
#endif
#endif
