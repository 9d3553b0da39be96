"""Panics in the board's log: spot them, keep them, decode their backtraces with the firmware's ELF.

The decoding is esp-idf-monitor's own (esp-idf-panic-decoder's PcAddressDecoder: the ELF's executable
sections pick which addresses are code, then the toolchain's addr2line names them), so a backtrace reads
as `idf.py monitor` would show it. Without an ELF or without the Xtensa addr2line the line says so,
and the raw backtrace stays on screen: a panic is never lost for want of a tool.
"""

from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

# What ESP-IDF prints when the app dies (esp_system's panic handler, abort(), assert(), stack overflow)
PANIC_MARKS = ("Guru Meditation Error", "abort() was called", "assert failed:", "***ERROR*** A stack overflow",
               "Stack smashing protect failure")
BACKTRACE = "Backtrace:"
# addr2line of the ESP-IDF toolchains: the unified one (IDF >= 5.2) and the per-chip one (earlier)
ADDR2LINE_PREFIXES = ("xtensa-esp32s3-elf-", "xtensa-esp-elf-")


def is_panic(line: str) -> bool:
    return any(m in line for m in PANIC_MARKS)


def find_elf(profile: str, root: Path | None = None) -> Path | None:
    """The newest firmware ELF a build of ``profile`` left: PlatformIO's or idf.py's build folder."""
    fw = (root or Path.cwd()) / "firmware"
    found = [Path(p) for p in glob.glob(str(fw / ".pio" / "build" / profile / "*.elf"))]
    found += [Path(p) for p in glob.glob(str(fw / "build" / "*.elf"))]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def find_addr2line_prefix() -> str | None:
    """The prefix of an Xtensa addr2line on PATH or in PlatformIO's packages, or None."""
    for prefix in ADDR2LINE_PREFIXES:
        if shutil.which(prefix + "addr2line"):
            return prefix
    pio = Path(os.environ.get("PLATFORMIO_CORE_DIR") or Path.home() / ".platformio") / "packages"
    for prefix in ADDR2LINE_PREFIXES:
        for tool in glob.glob(str(pio / "toolchain-xtensa-esp*" / "bin" / f"{prefix}addr2line")):
            return tool[: -len("addr2line")]
    return None


@dataclass
class Decoder:
    """Backtrace line -> lines to show. ``prefix`` is the toolchain prefix of addr2line ("" for the host's)."""

    elf: Path | None
    prefix: str | None

    def why_not(self) -> str | None:
        """Why nothing can be decoded, as a line for the user; None when decoding is possible."""
        if self.elf is None:
            return ("backtrace not decoded: no firmware ELF (pass --elf, e.g. "
                    "firmware/.pio/build/<board>/firmware.elf, or build the firmware first)")
        if not self.elf.is_file():
            return f"backtrace not decoded: {self.elf} does not exist"
        if self.prefix is None:
            return ("backtrace not decoded: no Xtensa addr2line (xtensa-esp32s3-elf-addr2line) on PATH or in "
                    "PlatformIO's packages; ESP-IDF's export.sh puts it on PATH")
        try:
            import esp_idf_panic_decoder  # noqa: F401
        except ImportError:
            return "backtrace not decoded: esp-idf-panic-decoder is not installed (pip install 'yamflash[firmware]')"
        return None

    def decode(self, line: str) -> list[str]:
        why = self.why_not()
        if why:
            return [why]
        from esp_idf_panic_decoder import PcAddressDecoder

        assert self.elf is not None and self.prefix is not None
        found = PcAddressDecoder(self.prefix, str(self.elf)).translate_addresses(line)
        if not found:
            return [f"backtrace not decoded: no address in it is code in {self.elf.name} (another build?)"]
        out = []
        for addr, trace in found:
            where = [f"{t.func} at {t.path}" + (f":{t.line}" if t.line else "") for t in trace]
            out.append(f"{addr}: {where[0]}")
            out += [f"  (inlined by) {w}" for w in where[1:]]
        return out


@dataclass
class Panic:
    """One panic: its first line, the backtrace as sent, and what the decoder made of it."""

    first: str
    backtrace: str | None = None
    decoded: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [self.first] + ([self.backtrace] if self.backtrace else []) + self.decoded
