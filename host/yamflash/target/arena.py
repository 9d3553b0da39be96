"""The tensor arena on the chip: how big `gen` makes it, where it goes, and whether the board's RAM holds it.

model.json's ``arena`` object carries the chip's figure beside the host's (``manifest_arena``, written by
convert, train and distill): ``chip_espnn`` is what the firmware's yf_inference.cpp used on TensorFlow Lite
Micro built with esp-tflite-micro's ESP-NN kernels and the ESP32-S3's scratch sizes (chip_arena.py). An older
model.json, or one written where ../shared/sdk is absent, has only the host figure: then the need is bounded
by the host arena plus the largest ESP-NN scratch request computed from the model's shapes
(espnn_scratch.py), and every output says it is that bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..manifest import ModelManifest
from . import partitions, profiles

# Margin on a chip figure: it is measured on the pinned TensorFlow Lite Micro with esp-nn's own S3 scratch
# sizes, and the 64-bit host already overstates the 32-bit chip's persistent area (chip_arena.py), so the
# margin covers only what the host cannot see: scratch sizes of esp-nn 1.4.1 (the registry version the firmware
# pins, not public) differing from the public source measured. 2 %, at least 8 KiB.
CHIP_MARGIN_PCT = 2
MARGIN_MIN = 8 * 1024
INTERNAL_RESERVE = 64 * 1024  # yf_inference.cpp kInternalReserve: internal RAM left for stacks and drivers


@dataclass(frozen=True)
class ChipNeed:
    bytes: int  # what the chip's AllocateTensors needs (measured), or the bound
    measured: bool  # False: the bound (host arena + largest ESP-NN scratch)
    what: str  # one line for headers and messages
    host: int
    largest_scratch: int


def manifest_arena(host: int, tflite: bytes, chip: dict[str, Any] | None) -> dict[str, Any]:
    """model.json's ``arena`` object: the host figure, and the chip's when chip_arena could measure it."""
    from ..chip import scratch as espnn_scratch

    out: dict[str, Any] = {"host_reference": host, "host_measured_on": "tflite-micro package, reference kernels"}
    if chip is None:
        out.update(chip_espnn=None, largest_scratch=espnn_scratch.largest(tflite),
                   chip_measured_on="not measured (no ../shared/sdk with esp-tflite-micro and esp-nn); gen bounds "
                                    "it by host_reference + largest_scratch")
    else:
        out.update(chip)
    return out


def chip_need(manifest: ModelManifest, model: bytes) -> ChipNeed:
    """The chip's arena need from model.json: its measured ``arena.chip_espnn``, else the labelled bound."""
    from ..chip import scratch as espnn_scratch

    host = manifest.arena_bytes
    a = manifest.chip_arena
    chip = a.get("chip_espnn") if isinstance(a, dict) else None
    if isinstance(chip, int) and not isinstance(chip, bool) and chip > 0:
        scratch = a.get("largest_scratch") if isinstance(a, dict) else None
        on = str(a.get("chip_measured_on", "chip build")).replace("*/", "* /")  # it lands in a C comment
        return ChipNeed(chip, True, f"measured ({on})", host,
                        int(scratch) if isinstance(scratch, int) else espnn_scratch.largest(model))
    scratch = espnn_scratch.largest(model)
    return ChipNeed(host + scratch, False, f"bound, not measured: host arena {host} + largest ESP-NN S3 scratch "
                    f"{scratch} (model.json has no chip figure; convert with ../shared/sdk present to measure it)",
                    host, scratch)


def size(need: ChipNeed, margin_pct: int | None) -> int:
    """YF_ARENA_BYTES: the need plus the margin (CHIP_MARGIN_PCT by default), at least MARGIN_MIN, 16-aligned."""
    pct = CHIP_MARGIN_PCT if margin_pct is None else margin_pct
    if pct < 0:
        raise UserError("arena margin must not be negative.")
    return partitions.align_up(need.bytes + max(need.bytes * pct // 100, MARGIN_MIN), 16)


def placement(arena_bytes: int, prof: profiles.Profile) -> str:
    """Where AllocArena should put it: internal RAM when the profile's largest free internal block holds it
    plus INTERNAL_RESERVE (the test yf_inference.cpp makes at run time), else PSRAM."""
    return "internal" if arena_bytes + INTERNAL_RESERVE <= prof.internal_free else "psram"


def check_ram(prof: profiles.Profile, storage: str, model_bytes: int, arena_bytes: int, where: str) -> None:
    """One UserError line when the board's RAM cannot hold the model copy (SPIFFS storage copies it into
    PSRAM) and the arena."""
    in_psram = (model_bytes if storage == "spiffs" else 0) + (arena_bytes if where == "psram" else 0)
    if in_psram <= prof.psram_bytes:
        return
    parts = ([f"the model copy ({model_bytes:,} B, SPIFFS storage)"] if storage == "spiffs" else []) + \
        ([f"the arena ({arena_bytes:,} B)"] if where == "psram" else [])
    hint = " use --storage partition (memory-mapped, no copy)" if storage == "spiffs" else \
        " use a board with more PSRAM or a smaller model (yamflash distill)"
    raise UserError(f"{prof.name} has {prof.psram_bytes // profiles.MB} MB of PSRAM, but {' + '.join(parts)} need "
                    f"{in_psram:,} B;{hint}.")


def recorded_chip_arena(tflite_path: str | Path) -> int | None:
    """The chip figure the model.json beside a .tflite records for exactly that file (same sha256), if any."""
    import hashlib
    import json

    path = Path(tflite_path)
    try:
        m = json.loads((path.parent / "model.json").read_text())
        same = m["model"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        chip = m["arena"]["chip_espnn"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return chip if same and isinstance(chip, int) and chip > 0 else None
