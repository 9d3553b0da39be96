"""Where the bytes of an Invoke live on an ESP32-S3 and what a cache miss costs there.

The S3 reads flash and PSRAM through one data cache (MSPI bus, "CPU accesses them via Cache": ESP-IDF
programming guide, ESP32-S3, API guides > "SPI Flash and External SPI RAM Configuration",
https://docs.espressif.com/projects/esp-idf/en/v5.3/esp32s3/api-guides/flash_psram_config.html). A miss
stalls the core for one SPI transaction that fills a cache line; a dirty line evicted later costs one write
transaction. Internal SRAM answers in a cycle and is not modelled as a stall.

Transaction lengths are counted from the phases ESP-IDF v5.5 programs into the MSPI controller
(``../shared/sdk/esp-idf-v5.5/components``):

- octal PSRAM (OPI, DTR: "Octal PSRAM only supports DTR mode", page above; 8 lines x 2 edges = 2 bytes per
  clock): ``esp_psram/esp32s3/esp_psram_impl_octal.c`` ``OCT_PSRAM_RD_CMD_BITLEN 16`` (1 clock),
  ``OCT_PSRAM_ADDR_BITLEN 32`` (2 clocks), ``OCT_PSRAM_RD_DUMMY_BITLEN (2*(10-1))`` (18 clocks),
  ``OCT_PSRAM_WR_DUMMY_BITLEN (2*(5-1))`` (8), ``OCT_PSRAM_CS_SETUP_TIME 3``, ``OCT_PSRAM_CS_HOLD_TIME 3``;
- quad PSRAM (QPI, STR: "Quad PSRAM only supports STR mode", page above; 4 lines = 0.5 byte per clock):
  ``esp_psram/device/esp_quad_psram_defs_ap.h`` ``PSRAM_QUAD_CMD_LENGTH 8`` in QPI (2 clocks),
  ``PSRAM_QUAD_ADDR_LENGTH 24`` (6), ``PSRAM_QUAD_FAST_READ_QUAD_DUMMY 6``, CS setup/hold 1 + 1;
- flash in QIO (the fast-read-quad command 0xEB: command on one line, 8 clocks; address on 4 lines):
  ``esp_rom/esp32s3/include/esp32s3/rom/spi_flash.h`` ``SPI0_R_QIO_ADDR_BITSLEN 23`` (24 bits, 6 clocks),
  ``SPI0_R_QIO_DUMMY_CYCLELEN 5`` (6 clocks), ``spi_flash/esp_flash_spi_init.c`` ``.cs_setup = 1``.

At 80 MHz SPI and 240 MHz CPU one SPI clock is 3 CPU cycles, so a 64-byte line from octal PSRAM costs
(27 + 32) x 3 = 177 cycles (87 MB/s); from quad PSRAM or QIO flash about 430-450 cycles (~35 MB/s).
Independent check, not used by the model: a published ESP32-S3 copy benchmark (octal PSRAM, 80 MHz) read
84 MB/s with 64-byte lines, 58 MB/s with 32-byte and 37 MB/s with 16-byte lines
(github.com/project-x51/esp32-s3-memorycopy issue #2); this model gives 87, 60 and 37 MB/s.

Cache geometry: ``esp_system/port/soc/esp32s3/Kconfig.cache`` -- data cache 16/32/64 KB (default 32 KB),
4 or 8 ways (default 8), lines of 16/32/64 bytes (default 32); "If you use 32KB data cache rather than
64KB data cache, the other 32KB will be added to the heap". Write-back (``SOC_CACHE_WRITEBACK_SUPPORTED``
in ``soc/esp32s3/include/soc/soc_caps.h``); a store that misses is assumed to fill the line first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

CPU_MHZ = 240
SPI_MHZ = 80


@dataclass(frozen=True)
class Bus:
    """One external memory behind the cache: clocks of a transaction outside its data phase, and bytes/clock."""

    name: str
    read_fixed: int
    write_fixed: int | None  # None: read-only (flash through the cache)
    bytes_per_clock: float

    def read_cycles(self, line: int) -> float:
        return (self.read_fixed + line / self.bytes_per_clock) * CPU_MHZ / SPI_MHZ

    def write_cycles(self, line: int) -> float:
        assert self.write_fixed is not None, f"{self.name} is read-only through the cache"
        return (self.write_fixed + line / self.bytes_per_clock) * CPU_MHZ / SPI_MHZ


OCTAL_PSRAM = Bus("octal PSRAM 80 MHz DTR", read_fixed=1 + 2 + 18 + 3 + 3, write_fixed=1 + 2 + 8 + 3 + 3,
                  bytes_per_clock=2.0)
QUAD_PSRAM = Bus("quad PSRAM 80 MHz", read_fixed=2 + 6 + 6 + 2, write_fixed=2 + 6 + 2, bytes_per_clock=0.5)
QIO_FLASH = Bus("QIO flash 80 MHz", read_fixed=8 + 6 + 6 + 1, write_fixed=None, bytes_per_clock=0.5)

# Largest block of internal RAM the firmware can give the arena, the rule the firmware and gen apply: the
# largest free internal block at start-up, 196,608 B in public heap dumps of S3 apps with PSRAM
# (target/profiles.py INTERNAL_FREE_S3), minus the 64 KiB yf_inference.cpp keeps for stacks and drivers
# (kInternalReserve; target/arena.py INTERNAL_RESERVE). Not measured on a board.
INTERNAL_ARENA_BUDGET = 196_608 - 64 * 1024


@dataclass(frozen=True)
class Layout:
    """Where an Invoke's bytes live: the tensor arena (activations + ESP-NN scratch, TFLite Micro's
    non-persistent part), its persistent part (per-channel quantization arrays, op data, tensor structs:
    TFLite Micro can be given a separate buffer for it) and the model."""

    arena: str = "psram"  # "internal" | "psram"
    model: str = "psram"  # "flash" (memory-mapped partition or rodata) | "psram" (copied from SPIFFS)
    psram: str = "octal"  # "octal" | "quad"
    cache_kb: int = 64
    line: int = 64
    persistent: str | None = None  # None: with the arena; "psram": a separate persistent arena in PSRAM

    def __post_init__(self) -> None:
        if self.arena not in ("internal", "psram") or self.model not in ("flash", "psram"):
            raise ValueError(f"bad layout {self}")
        if self.psram not in ("octal", "quad") or self.cache_kb not in (16, 32, 64) or self.line not in (16, 32, 64):
            raise ValueError(f"bad layout {self}")
        if self.persistent not in (None, "internal", "psram"):
            raise ValueError(f"bad layout {self}")

    @property
    def psram_bus(self) -> Bus:
        return OCTAL_PSRAM if self.psram == "octal" else QUAD_PSRAM

    def bus(self, region: str) -> Bus | None:
        """The bus behind a region, or None for internal SRAM."""
        if region == "internal":
            return None
        if region == "flash":
            return QIO_FLASH
        return self.psram_bus

    @property
    def persistent_region(self) -> str:
        return self.persistent or self.arena

    @property
    def cache_bytes(self) -> int:
        return self.cache_kb * 1024

    def name(self) -> str:
        s = f"arena {self.arena}"
        if self.persistent_region != self.arena:
            s += f" (persistent part {self.persistent_region})"
        return f"{s}, model {'mmap flash' if self.model == 'flash' else 'PSRAM'}, {self.psram} PSRAM, " \
               f"dcache {self.cache_kb} KB/{self.line} B"

    def with_(self, **kw: object) -> Layout:
        return replace(self, **kw)  # type: ignore[arg-type]


# yamflash's firmware: octal PSRAM at 80 MHz, 64 KB data cache with 64-byte lines (templates/sdkconfig.defaults.j2).
FIRMWARE = Layout(arena="psram", model="psram", psram="octal", cache_kb=64, line=64)
