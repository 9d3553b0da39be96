/* Host stand-in for ESP-IDF's esp_log.h: the ESP_LOGx macros print "L (ms) tag: text" lines, as the chip's
 * log does, into a buffer the host reads back (yfh_log_read), so nothing reaches the test's stdout. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

void yfh_log(char level, const char *tag, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif

#define ESP_LOGE(tag, fmt, ...) yfh_log('E', tag, fmt, ##__VA_ARGS__)
#define ESP_LOGW(tag, fmt, ...) yfh_log('W', tag, fmt, ##__VA_ARGS__)
#define ESP_LOGI(tag, fmt, ...) yfh_log('I', tag, fmt, ##__VA_ARGS__)
#define ESP_LOGD(tag, fmt, ...) yfh_log('D', tag, fmt, ##__VA_ARGS__)
#define ESP_LOGV(tag, fmt, ...) yfh_log('V', tag, fmt, ##__VA_ARGS__)
