"""Board profiles: what `yamflash gen` and `yamflash build` need to know about each supported board.

A profile name is also the PlatformIO environment in firmware/platformio.ini. ``sim`` is the virtual
board: it has no ESP-IDF build, always stores the model as a raw partition, and its "app" is a
descriptor file (see build.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError

MB = 1024 * 1024

# RAM the firmware can count on, per board (unverified on a real board; sources beside each figure):
# - PSRAM: the module's, from Espressif's ESP32-S3-DevKitC-1 user guide (docs.espressif.com/projects/esp-idf/en/
#   v5.3.1/esp32s3/hw-reference/esp32s3/user-guide-devkitc-1.html, ordering table): ESP32-S3-WROOM-1-N16R8 has
#   8 MB octal PSRAM, -N8R2 2 MB quad PSRAM. With CONFIG_SPIRAM_USE_MALLOC (our sdkconfig.defaults) ESP-IDF adds
#   all of it to the heap; the allocator's own few KB are not modelled.
# - Internal RAM: the ESP32-S3 has 512 KB SRAM (ESP32-S3 datasheet); ESP-IDF v5.5's heap gets the D/IRAM
#   0x3FC88000..0x3FCE9710 (components/soc/esp32s3/include/soc/soc.h SOC_DIRAM_DRAM_LOW, SOC_ROM_STACK_START -
#   SOC_ROM_STACK_SIZE; heap/port/esp32s3/memory_layout.c), 399,120 B, minus the app's IRAM code and static data.
#   What an S3 app with PSRAM has left as its largest free internal block at start-up was 196,608 B and
#   229,376 B in two public heap dumps (heap_caps_print_heap_info in RomanLut/hx-esp32-cam-fpv#46; esp32.idf_heap_info
#   in micropython/micropython#12075, IDF 5.0.2); we take the lower as the largest block AllocArena can get.
INTERNAL_FREE_S3 = 196_608


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    pio_board: str  # PlatformIO board id ("" for sim)
    flash_size: int  # bytes
    psram: str  # "octal" | "quad" | "host"
    flash_mode: str = "qio"
    flash_freq: str = "80m"
    console: str = "usb-serial-jtag"  # default console: "usb-serial-jtag" | "uart"
    # Default model storage: "partition" | "spiffs". The raw partition is memory-mapped (esp_partition_mmap): no
    # copy of the ~4 MB model into PSRAM at boot, and it fits the 2 MB PSRAM of esp32s3-n8r2, which cannot hold
    # a copy. "spiffs" stays available (--storage spiffs) for a model kept as a file.
    storage: str = "partition"
    sim: bool = False
    psram_bytes: int = 8 * MB  # PSRAM the heap gets (see above)
    internal_free: int = INTERNAL_FREE_S3  # largest free internal-RAM block when the arena is allocated

    @property
    def flash_size_str(self) -> str:
        return f"{self.flash_size // MB}MB"


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("esp32s3-n16r8", "ESP32-S3-DevKitC-1 N16R8 (16 MB flash, 8 MB octal PSRAM)",
                "esp32-s3-devkitc-1", 16 * MB, "octal"),
        Profile("esp32s3-n8r2", "ESP32-S3-DevKitC-1 N8R2 (8 MB flash, 2 MB quad PSRAM)",
                "esp32-s3-devkitc-1", 8 * MB, "quad", psram_bytes=2 * MB),
        # The virtual board behaves as an N16R8 would: same RAM figures.
        Profile("sim", "virtual board (host process; raw model partition)", "", 16 * MB, "host",
                console="pty", storage="partition", sim=True),
    )
}


def get(name: str) -> Profile:
    """The profile called ``name``; UserError listing the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UserError(f"unknown board profile {name!r}; use one of: {', '.join(PROFILES)}.") from None
