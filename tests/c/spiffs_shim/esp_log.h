/* Host stand-in for ESP-IDF's esp_log.h, enough for ESP-IDF's spiffs_config.h: its SPIFFS_*DBG macros
 * expand to ESP_LOGD only when CONFIG_SPIFFS_*DBG is set, which the reader's sdkconfig.h never does. */
#pragma once
#define ESP_LOGD(tag, ...) ((void)(tag))
