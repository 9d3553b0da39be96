"""Compare INT8 conversion recipes on the shared data: fidelity in TFLite Micro, arena, conversion time.

Uses the same calibration draw and held-out split as ``yamflash convert`` (``dataset.collect``, seed 0,
30 % of the files held out), runs each recipe, evaluates the INT8 model in TFLite Micro against the float
Keras model on the held-out patches and writes build/bench/convert.json.

    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python scripts/bench_convert.py [--recipes eq-round,eq-joint,eq-sens,ptq-minmax]
        [--hub-recipes eq-round,ptq-minmax]

Two sets of genuine weights are measured, each against its own float model: Google's yamnet.h5 weights
(here from the DRQ export; plain ReLU) and Google's retrained TF Hub lite model (ReLU6, under
"tf_hub_relu6").

Rows of recipes not named are kept from an existing output file (baselines need not be re-run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("YAMFLASH_DATA", ROOT.parent / "shared" / "data"))


def bench_weights(weights_path: str, recipes: list[str], calib: np.ndarray, ev: Any, out_dir: Path,
                  prefix: str, rows: dict[str, Any]) -> dict[str, Any]:
    """Convert with each recipe, measure in TFLite Micro against this weights' own float model, and add
    the ceiling (float network, only the int8 input and output). ``rows`` holds earlier rows to keep."""
    from yamflash.model import fidelity
    from yamflash.model.keras import build, float_scores
    from yamflash.model.tflm import MicroModel, arena_bytes
    from yamflash.model.weights import load_weights
    from yamflash.quant import recipes as quantize
    from yamflash.quant.simulate import N_TENSORS, QuantSpec, Simulator

    weights = load_weights(weights_path)
    ref = float_scores(build(weights), ev.patches)
    for name in recipes:
        t0 = time.monotonic()
        tfl, recipe = quantize.convert_int8(weights, calib, log=lambda m: print(f"  {m}", file=sys.stderr),
                                            recipe=name)
        secs = time.monotonic() - t0
        (out_dir / f"{prefix}{name}.tflite").write_bytes(tfl)
        t1 = time.monotonic()
        test = MicroModel(tfl).run(ev.patches)
        fid = fidelity.compare(ref, test)  # includes top1_tie_aware
        rows[name] = {
            "fidelity": fid,
            "arena_bytes": arena_bytes(tfl),
            "model_bytes": len(tfl),
            "convert_seconds": round(secs, 1),
            "tflm_ms_per_patch": round(1000 * (time.monotonic() - t1) / max(1, len(ev.patches)), 1),
            "recipe": recipe,
        }
        r = rows[name]
        print(f"{prefix}{name:12s} top1 {fid['top1_agreement']:.4f} (tie-aware {fid['top1_tie_aware']:.4f})  "
              f"top5 {fid['top5_overlap']:.4f}  cosine {fid['cosine_mean']:.4f}  mae {fid['mae']:.5f}  "
              f"max {fid['max_abs_error']:.3f}  arena {r['arena_bytes']:,}  convert {secs:.0f} s", flush=True)
    # What no int8-output model can beat: float network, only the input and output rounded.
    ranges = np.zeros((N_TENSORS, 2), np.float32)
    ranges[0] = [min(0.0, float(calib.min())), float(calib.max())]
    ceil = Simulator(weights).scores(ev.patches, QuantSpec(ranges, weights=False, output=True))
    c = fidelity.compare(ref, ceil)
    print(f"{prefix}{'ceiling':12s} top1 {c['top1_agreement']:.4f} (tie-aware {c['top1_tie_aware']:.4f})  "
          f"cosine {c['cosine_mean']:.4f}  (float network, int8 input and output only)")
    return {"weights": weights_path, "activation": weights.activation, "recipes": rows,
            "ceiling_int8_input_output": c}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=str(DATA / "models" / "yamnet_keras_drq_logmel_out.tflite"))
    ap.add_argument("--hub-weights", default=str(DATA / "models" / "lite-model_yamnet_classification_tflite_1.tflite"),
                    help="Google's retrained ReLU6 YAMNet (TF Hub lite model), measured as a second set of weights")
    ap.add_argument("--calib-dir", default=str(DATA / "audio" / "esc50-16k-dev" / "audio"))
    ap.add_argument("--calib-count", type=int, default=1000)
    ap.add_argument("--eval-count", type=int, default=None, help="evaluate on at most this many patches")
    ap.add_argument("--recipes", default="eq-round,eq-joint,eq-sens,ptq-minmax",
                    help="recipes for --weights ('' for none)")
    ap.add_argument("--hub-recipes", default="eq-round,ptq-minmax", help="recipes for --hub-weights ('' for none)")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench" / "convert.json"))
    args = ap.parse_args(argv)

    from yamflash import dataset

    calib, ev, info = dataset.collect(args.calib_dir, None, args.calib_count, args.eval_count, seed=0)
    assert ev is not None
    out_dir = Path(args.out).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    old: dict[str, Any] = {}
    if Path(args.out).is_file():  # keep earlier rows (baselines) measured on the same data
        old = json.loads(Path(args.out).read_text())
        old = old if old.get("data") == info else {}
    results: dict[str, Any] = {"data": info, "machine_cpus": os.cpu_count()}
    main_rows = bench_weights(args.weights, [r for r in args.recipes.split(",") if r], calib, ev, out_dir, "",
                              dict(old.get("recipes", {})))
    results["weights"] = main_rows["weights"]
    results["recipes"] = main_rows["recipes"]
    results["ceiling_int8_input_output"] = main_rows["ceiling_int8_input_output"]
    hub_recipes = [r for r in args.hub_recipes.split(",") if r]
    if hub_recipes and Path(args.hub_weights).is_file():
        results["tf_hub_relu6"] = bench_weights(args.hub_weights, hub_recipes, calib, ev, out_dir, "hub-",
                                                dict(old.get("tf_hub_relu6", {}).get("recipes", {})))
    elif "tf_hub_relu6" in old:
        results["tf_hub_relu6"] = old["tf_hub_relu6"]
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
