/* Shared state of the host stand-ins (fakes.c) and the driver (driver.c). */
#pragma once
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    void (*fn)(void *);
    const char *name;
    uint32_t stack;
    unsigned prio;
    int core;
} fk_task_t;

extern char fk_trace[1 << 16];   /* what the firmware asked for, in order (see fakes.c) */
extern jmp_buf fk_stop;          /* a blocking receive on an empty queue jumps here */
extern fk_task_t fk_tasks[8];    /* tasks created with xTaskCreatePinnedToCore */
extern int fk_n_tasks;
extern char fk_lines[1 << 14];   /* protocol lines written to the console */
extern int fk_invoke_rc;         /* what yf_infer_invoke returns */
extern const uint8_t *fk_flash;  /* the model partition's bytes, for the partition storage */
extern size_t fk_flash_bytes;
extern uint32_t fk_part_address;
