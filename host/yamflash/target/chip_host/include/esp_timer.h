/* Host stand-in for ESP-IDF's esp_timer.h: esp_timer_get_time, microseconds since start (a monotonic clock
 * here, not the chip's timer), as used by yf_inference.cpp, TFLite Micro's esp/micro_time.cc and the
 * ESP-NN kernels' timing counters. */
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int64_t esp_timer_get_time(void);

#ifdef __cplusplus
}
#endif
