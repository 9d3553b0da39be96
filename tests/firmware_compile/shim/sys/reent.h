/* Shim for the firmware compile gate (tests/firmware_compile): newlib's <sys/reent.h>, which the host's glibc
 * does not have. ESP-IDF v5.5 headers (components/vfs/include/esp_vfs.h) use `struct _reent *` only as an
 * opaque pointer in function-pointer types, so the incomplete type is all they need. */
#pragma once
struct _reent;
