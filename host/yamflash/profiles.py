"""Board profiles: what `yamflash gen` and `yamflash build` need to know about each supported board.

A profile name is also the PlatformIO environment in firmware/platformio.ini. ``sim`` is the virtual
board: it has no ESP-IDF build, always stores the model as a raw partition, and its "app" is a
descriptor file (see build.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UserError

MB = 1024 * 1024


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

    @property
    def flash_size_str(self) -> str:
        return f"{self.flash_size // MB}MB"


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("esp32s3-n16r8", "ESP32-S3-DevKitC-1 N16R8 (16 MB flash, 8 MB octal PSRAM)",
                "esp32-s3-devkitc-1", 16 * MB, "octal"),
        Profile("esp32s3-n8r2", "ESP32-S3-DevKitC-1 N8R2 (8 MB flash, 2 MB quad PSRAM)",
                "esp32-s3-devkitc-1", 8 * MB, "quad"),
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
