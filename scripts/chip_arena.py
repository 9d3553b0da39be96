"""The chip's tensor arena of a converted model, and what `gen` does with it on every board profile.

    python scripts/chip_arena.py build/model [--m32]

Prints the host figure (tflite-micro package, reference kernels), the chip figure (the firmware's
yf_inference.cpp on esp-tflite-micro v1.3.7 with ESP-NN kernels and ESP32-S3 scratch sizes, 64-bit host
build), with --m32 the same build for a 32-bit target (needs gcc-multilib), the largest scratch request,
and per profile and storage YF_ARENA_BYTES, its placement and whether the board's RAM holds it. Needs
../shared/sdk (or YAMFLASH_SDK).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from yamflash.errors import UserError
from yamflash.target import arena, chip_arena, chip_build, profiles


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir", type=Path, help="folder with model.json and model.tflite")
    ap.add_argument("--m32", action="store_true", help="also measure a 32-bit (-m32) build")
    a = ap.parse_args()
    m = json.loads((a.model_dir / "model.json").read_text())
    model = (a.model_dir / "model.tflite").read_bytes()
    t0 = time.monotonic()
    chip = chip_arena.measure(m, model)
    if chip is None:
        print("no ../shared/sdk: the chip figure cannot be measured here", file=sys.stderr)
        return 2
    print(f"host (reference kernels): {m['arena_bytes']:>10,} B")
    print(f"chip (ESP-NN, 64-bit):    {chip['chip_espnn']:>10,} B   ({time.monotonic() - t0:.1f} s incl. build)")
    if a.m32:
        with tempfile.TemporaryDirectory() as td:
            plan = chip_arena.measuring_plan(m, model, Path(td))
            m32 = chip_build.measure_32bit(chip_arena.write_headers(plan, Path(td) / "g"), model)
        more = chip["chip_espnn"] - m32["used"]
        print(f"chip (ESP-NN, 32-bit):    {m32['used']:>10,} B   (64-bit is {more:,} B more)")
    print(f"largest scratch request:  {chip['largest_scratch']:>10,} B   ({chip['scratch_requests']} requests)")
    need = arena.ChipNeed(chip["chip_espnn"], True, "", m["arena_bytes"], chip["largest_scratch"])
    size = arena.size(need, None)
    for prof in profiles.PROFILES.values():
        for storage in ("partition", "spiffs"):
            if prof.sim and storage == "spiffs":
                continue
            where = arena.placement(size, prof)
            try:
                arena.check_ram(prof, storage, len(model), size, where)
                ok = "fits"
            except UserError as exc:
                ok = f"refused: {exc}"
            print(f"{prof.name:<14} {storage:<9} YF_ARENA_BYTES {size:,} in {where}: {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
