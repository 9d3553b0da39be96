"""Issue 14: every chip layout of a model, estimated: bit-exact graph rewrites x arena place x model place.

    python scripts/chip_layout.py MODEL.tflite [--board esp32s3-n16r8] [--json]

MODEL.tflite: a model as TensorFlow converted it (no rewrites yet), e.g. `yamflash convert`'s output before
this release or the plain conversion tests/test_rewrite.py caches. Prints, per rewrite set and layout, the
estimated Invoke (chip/estimate.py: esp-nn 1.2 dispatch, 240 MHz, 64 KB/64 B data cache; +-17 %, the worst
held-back check of scripts/bench_estimate.py), the estimator's chip arena and whether the board holds it
(internal RAM: arena + 64 KiB reserve <= the profile's largest internal block; PSRAM: model copy + arena), then
the layout `convert` would choose, against the goals (Invoke <= 250 ms for the full model) and the published
YAMNet port's 500-650 ms. Estimates, not measurements: no board is involved.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "host"))

from yamflash.chip.cost import PATCH_HOP_S, PUBLISHED_PORT  # noqa: E402
from yamflash.target import layout  # noqa: E402

GOAL_MS = 250.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--board", default=None, help="only this board (default: both recorded ones)")
    ap.add_argument("--goal-ms", type=float, default=GOAL_MS, help="250 for the full model, 60 for the student")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = layout.candidates(args.model.read_bytes())
    boards = [args.board] if args.board else list(layout.BOARDS)
    if args.json:
        print(json.dumps([r for r in rows if r["board"] in boards], indent=2))
        return 0
    for board in boards:
        mine = sorted((r for r in rows if r["board"] == board), key=lambda r: (not r["fits"], r["invoke_ms"]))
        print(f"{board}: estimated Invoke per rewrite set and layout (fitting first, fastest first)")
        print(f"  {'rewrites':<62} {'layout':<32} {'Invoke':>8} {'arena est.':>11}  fits")
        for r in mine:
            why = "yes" if r["fits"] else f"no: {r['why_not']}"
            print(f"  {r['rewrite']:<62} {r['layout']:<32} {r['invoke_ms']:6.0f} ms {r['arena_estimate']:>11,}  {why}")
        best = layout.best(rows, board)
        base = layout.best([r for r in rows if r["rewrite"] == "as converted"], board)
        ideal = min(r["invoke_ms"] for r in mine)
        print(f"  chosen: {best['rewrite']}, {best['layout']}: ~{best['invoke_ms']:.0f} ms, real-time factor "
              f"{best['invoke_ms'] / 1000 / PATCH_HOP_S:.2f} (as converted: ~{base['invoke_ms']:.0f} ms)")
        print(f"  goal <= {args.goal_ms:.0f} ms: {'met' if best['invoke_ms'] <= args.goal_ms else 'NOT met'}; fastest "
              f"layout ignoring the RAM limits: ~{ideal:.0f} ms")
        print(f"  for comparison: the {PUBLISHED_PORT}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
