"""Cost of yf_core per 10 ms audio frame, in instructions, measured with valgrind's callgrind.

Builds tests/c/bench_core.c against the core (-O2, as the firmware), runs each workload for two frame
counts and takes the difference, so start-up and table set-up cancel out. Host instructions (x86-64 here),
not ESP32-S3 cycles: the number is for comparing one version of the core with the next. Writes
build/bench/core.json and prints a table.

    .venv/bin/python scripts/bench_core.py [--frames 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from yamflash.frontend import sparse_mel  # noqa: E402

CORE = ROOT / "firmware" / "components" / "yf_core"
OUT = ROOT / "build" / "bench"
MODES = {
    "frontend": "framing, Hann window, 512-point FFT, magnitude, 64 mel bands, log",
    "pipeline": "frontend + 96x64 patch ring + int8 quantization + detector (per 48 frames)",
    "proto": "one pcm command (160 samples) written and parsed + one det event written",
}


def write_tables(path: Path) -> None:
    bands = sparse_mel()
    weights = [w for _, ws in bands for w in ws.tolist()]
    path.write_text(
        "/* Written by scripts/bench_core.py from yamflash.frontend.sparse_mel(). */\n#include <stdint.h>\n"
        f"static const uint16_t MEL_FIRST[64] = {{{', '.join(str(f) for f, _ in bands)}}};\n"
        f"static const uint16_t MEL_LEN[64] = {{{', '.join(str(len(w)) for _, w in bands)}}};\n"
        f"static const float MEL_WEIGHTS[{len(weights)}] = {{{', '.join(f'{w:.9g}f' for w in weights)}}};\n")


def build() -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    write_tables(OUT / "mel_tables.h")
    exe = OUT / "bench_core"
    srcs = sorted(str(p) for p in (CORE / "src").glob("*.c"))
    cmd = [shutil.which("cc") or "gcc", "-std=c99", "-O2", "-g", "-Wall", "-Wextra", "-Werror",
           "-I", str(CORE / "include"), "-I", str(OUT), *srcs, str(ROOT / "tests" / "c" / "bench_core.c"),
           "-o", str(exe), "-lm"]
    subprocess.run(cmd, check=True)
    return exe


def instructions(exe: Path, frames: int, mode: str) -> int:
    out_file = OUT / f"callgrind.{mode}.{frames}.out"
    res = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", str(exe),
                          str(frames), mode], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"valgrind failed for {mode}: {res.stderr[-2000:]}")
    m = re.search(r"Collected : (\d+)", res.stderr)
    if not m:
        raise SystemExit(f"no instruction count in valgrind's output:\n{res.stderr[-2000:]}")
    return int(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=480, help="frames in the longer run (the shorter is half)")
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        print("valgrind is not installed; install it (apt-get install valgrind) to run this benchmark.")
        return 2
    exe = build()
    lo, hi = args.frames // 2, args.frames
    rows = {}
    for mode, what in MODES.items():
        a, b = instructions(exe, lo, mode), instructions(exe, hi, mode)
        rows[mode] = {"what": what, "instructions_per_frame": round((b - a) / (hi - lo)),
                      "frames": [lo, hi], "total_instructions": [a, b]}
    report = {"tool": "valgrind --tool=callgrind", "machine": platform.machine(), "cflags": "-O2",
              "unit": "instructions per 10 ms frame (host ISA, not chip cycles)", "modes": rows}
    (OUT / "core.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'workload':<10} {'instr/frame':>12}  what")
    for mode, r in rows.items():
        print(f"{mode:<10} {r['instructions_per_frame']:>12,}  {r['what']}")
    print(f"written {OUT / 'core.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
