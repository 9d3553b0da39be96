"""Every published ESP32-S3 figure the latency estimate knows, the estimate beside it, and the error.

    python scripts/bench_estimate.py [--model build/model/model.tflite] [--json]

FIT SET: esp-nn's README kernel tables (one per code generation); the constants are solved from them, so
their errors show only that the fit reproduces them. HELD-BACK CHECKS: whole-model Invoke times nothing was
fitted to; the script exits 1 when any of them (or any fit row) is off by more than 20 %. With --model (or
a converted model in build/), it also prints that model's estimate under every layout and what-if rewrite.
No board is involved: these are estimates, compared with other people's measurements.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "host"))

from dataclasses import replace  # noqa: E402

from yamflash.chip import cost as E  # noqa: E402
from yamflash.chip import whatif  # noqa: E402
from yamflash.chip.calibration import CHECKS, GENS, MODELS, TABLE_SOURCE  # noqa: E402

LIMIT = 0.20


def find_model(arg: str | None) -> Path | None:
    if arg:
        return Path(arg)
    for pattern in ("build/model/model.tflite", "build/cache/model-*/model.tflite"):
        hits = sorted(glob.glob(str(ROOT / pattern)))
        if hits:
            return Path(hits[0])
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a converted .tflite to estimate under every layout")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    fit = {g: E.fit_residuals(g) for g in GENS}
    checks = [E.check(c) for c in CHECKS]
    model = find_model(args.model)
    layouts = whatif.rewrites(E.layers_from_model(model)) if model and model.is_file() else []
    bad = [c for c in checks if abs(c["error"]) > LIMIT] + \
          [r for g in GENS for r in fit[g] if abs(r["error"]) > LIMIT]
    if args.json:
        print(json.dumps({"fit": fit, "checks": checks, "model": str(model) if layouts else None,
                          "layouts": layouts, "limit": LIMIT, "ok": not bad}, indent=2))
        return 1 if bad else 0

    print("FIT SET (constants solved from these rows; the error only shows the fit reproduces them)")
    for g in GENS:
        print(f"  {TABLE_SOURCE[g]}: ticks of the 'Optimized' column, ESP32-S3 240 MHz")
        for r in fit[g]:
            print(f"    {r['function']:<16} {r['data']:<44} {r['published']:>9,} {r['estimate']:>9,} "
                  f"{r['error']:+7.1%}")
    print("\nHELD-BACK CHECKS (whole-model Invoke; nothing fitted to them)")
    print(f"  {'published measurement':<48} {'published':>10} {'estimate':>9} {'error':>7}")
    for c in checks:
        pub = f"{c['published_ms']:.0f} ms"
        if c["range"]:
            pub = f"{c['range'][0]:.0f}-{c['range'][1]:.0f} (p95 {c['published_ms']:.0f}) ms"
        flag = f"  OFF BY MORE THAN {LIMIT:.0%}".replace("%", " %") if abs(c["error"]) > LIMIT else ""
        print(f"  {c['name']:<48} {pub:>10} {c['estimate_ms']:>6.0f} ms {c['error']:+7.1%}{flag}")
        print(f"      source: {c['source']}")
        print(f"      layout: {c['layout']}; esp-nn {c['gen']} kernels; assumed: {c['assumptions']}")
    print("\nSENSITIVITY of the YAMNet check to what the publication does not say (informative, not checked)")
    port = next(c for c in CHECKS if c.model == "yamnet")
    misaligned = [replace(lay, filter_offset=12) for lay in MODELS["yamnet"]]  # as yamflash's file has them
    for label, gen, layout, layers in [
            ("as assumed above", port.gen, port.layout, MODELS["yamnet"]),
            ("esp-nn 1.2 kernels", "1.2", port.layout, MODELS["yamnet"]),
            ("64 KB data cache, 64-byte lines", port.gen, port.layout.with_(cache_kb=64, line=64), MODELS["yamnet"]),
            ("quad PSRAM", port.gen, port.layout.with_(psram="quad"), MODELS["yamnet"]),
            ("filters 4 bytes off 8-byte alignment (1x1 filter copies)", port.gen, port.layout, misaligned)]:
        ms = E.run(layers, gen, layout)["ms"]
        print(f"  {label:<58} {ms:6.0f} ms  {ms / port.published_ms - 1:+7.1%}")
    if layouts:
        print(f"\n{model}: estimate per layout and what-if rewrite (esp-nn {E.DEFAULT_GEN}, fastest fitting first)")
        for r in layouts:
            fit_note = "" if r["fits"] else f"  ({r['why_not']})"
            ovf = f"  esp-nn 1.2.3 scratch overflow {r['scratch_overflow']:,} B" if r["scratch_overflow"] else ""
            print(f"  {r['rewrite']:<44} {r['name']:<40} {r['invoke_ms']:6.0f} ms  arena ~{r['arena_estimate']:>9,} B"
                  f"{fit_note}{ovf}")
    print(f"\n{'FAIL' if bad else 'OK'}: {len(bad)} figure(s) off by more than {LIMIT:.0%}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
