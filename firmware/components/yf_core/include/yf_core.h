/* yf_core: the portable C99 core of the yamflash firmware (no ESP-IDF includes). One include for all. */
#ifndef YF_CORE_H
#define YF_CORE_H

#include <stddef.h>

#include "yf_detect.h"
#include "yf_device.h"
#include "yf_frontend.h"
#include "yf_patch.h"
#include "yf_proto.h"
#include "yf_quant.h"

#ifdef __cplusplus
extern "C" {
#endif

#define YF_CORE_VERSION "0.1.0"

/* Size of each caller-owned struct, for bindings that cannot see the headers (ctypes). */
size_t yf_sizeof_frontend(void);
size_t yf_sizeof_patcher(void);
size_t yf_sizeof_detect(void);
size_t yf_sizeof_line_asm(void);
size_t yf_sizeof_cmd(void);
size_t yf_sizeof_device(void);

#ifdef __cplusplus
}
#endif
#endif
