/* The serial console (USB-Serial-JTAG or UART, per the generated board config): ESP-IDF's logs and the
 * protocol share it. Output goes through stdout with the driver behind the VFS, one whole line per
 * locked write, so a protocol line is never split by a log line. */
#ifndef YF_CONSOLE_H
#define YF_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Install the console driver and route stdout/stdin through it. */
esp_err_t yf_console_init(void);

/* Write one complete line (it ends with '\n'); a zero length (an encoder overflow) is dropped. */
void yf_console_write_line(const char *line, size_t len);

/* Read up to cap bytes, waiting at most timeout_ms; returns bytes read (0 on timeout). */
size_t yf_console_read(uint8_t *buf, size_t cap, uint32_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
