/* Shim for the firmware compile gate (tests/firmware_compile): FreeRTOS's portable/linux port, which the gate
 * uses because the Xtensa port's headers need the Xtensa toolchain, is single-core; the ESP32-S3 build has
 * configNUMBER_OF_CORES = 2 (CONFIG_FREERTOS_NUMBER_OF_CORES), for which FreeRTOS.h requires two more port
 * macros. They are defined here exactly as esp-idf v5.5's Xtensa port does
 * (components/freertos/FreeRTOS-Kernel/portable/xtensa/include/freertos/portmacro.h: portGET_CORE_ID() ->
 * xPortGetCoreID(), portYIELD_CORE(x) -> vPortYieldOtherCore(x)), on the functions the linux port's
 * portmacro_idf.h already declares. Nothing else is changed. */
#include_next "portmacro.h"

#if !defined(portGET_CORE_ID)
#define portGET_CORE_ID() xPortGetCoreID()
#endif
#if !defined(portYIELD_CORE)
#define portYIELD_CORE(xCoreID) vPortYieldOtherCore(xCoreID)
#endif
