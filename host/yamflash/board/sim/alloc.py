"""The tensor arena as the chip allocates it, for the virtual board.

yf_inference.cpp (firmware/main) does: AllocArena(YF_ARENA_BYTES) in internal RAM when `gen` placed it there
(YF_ARENA_INTERNAL) and the largest free internal block holds it plus 64 KiB, else in PSRAM; then
AllocateTensors, which needs the chip's figure (model.json ``arena.chip_espnn``, carried by the app
descriptor as ``arena_used``). Too small: it retries with 4x the bytes in PSRAM, reports ``E_ALLOC`` and runs
on (rc -2), or, when that fails too, ``E_MODEL`` (rc -1). This mirrors those steps on the board profile's RAM
figures (profiles.py), so an E_ALLOC on the chip is an E_ALLOC on the virtual board, with the same message.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...target import profiles
from ...target.arena import INTERNAL_RESERVE


@dataclass(frozen=True)
class Allocation:
    size: int  # bytes allocated for the arena (0: none could be)
    used: int  # what AllocateTensors uses (the chip's figure)
    where: str  # "internal" | "psram"
    rc: int  # yf_infer_init: 0, -2 (E_ALLOC, running with the 4x PSRAM arena), -1 (E_MODEL)
    err: str  # the firmware's err text for rc != 0


def allocate(configured: int, need: int, internal: bool, prof: profiles.Profile) -> Allocation:
    """yf_infer_init's Build/AllocArena sequence for an arena of ``configured`` bytes and a model that needs
    ``need``; ``internal`` is gen's placement (YF_ARENA_INTERNAL)."""
    def place(size: int, allow_internal: bool) -> str | None:
        if allow_internal and prof.internal_free >= size + INTERNAL_RESERVE:
            return "internal"
        return "psram" if size <= prof.psram_bytes else None

    where = place(configured, internal)
    if where is not None and need <= configured:
        return Allocation(configured, need, where, 0, "")
    big = 4 * configured
    if place(big, False) is not None and need <= big:
        return Allocation(big, need, "psram", -2, f"AllocateTensors needs {need} bytes, the firmware configures "
                          f"{configured}; running with a {big}-byte PSRAM arena: regenerate with a larger "
                          f"--arena-margin")
    return Allocation(0, 0, "psram", -1, f"AllocateTensors failed with {configured} bytes and with {big} bytes of "
                      f"PSRAM (see the log line above for the bytes requested)")
