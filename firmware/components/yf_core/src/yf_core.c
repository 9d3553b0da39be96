/* Struct sizes for bindings that cannot read the headers (the host's ctypes wrapper). */
#include "yf_core.h"

size_t yf_sizeof_frontend(void)
{
    return sizeof(yf_frontend_t);
}

size_t yf_sizeof_patcher(void)
{
    return sizeof(yf_patcher_t);
}

size_t yf_sizeof_detect(void)
{
    return sizeof(yf_detect_t);
}

size_t yf_sizeof_line_asm(void)
{
    return sizeof(yf_line_asm_t);
}

size_t yf_sizeof_cmd(void)
{
    return sizeof(yf_cmd_t);
}

size_t yf_sizeof_device(void)
{
    return sizeof(yf_device_t);
}
