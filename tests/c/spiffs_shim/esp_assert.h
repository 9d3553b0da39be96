/* Host stand-in for ESP-IDF's esp_assert.h: ESP_STATIC_ASSERT is C11's _Static_assert there too. */
#pragma once
#define ESP_STATIC_ASSERT _Static_assert
