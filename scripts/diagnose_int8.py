"""Where a converted INT8 YAMNet loses fidelity: per-tensor ablations in the batched simulator.

For a model made by ``yamflash convert`` (default: the eq-clip model bench_convert.py writes), on the
same held-out ESC-50 patches as bench_convert.py, against the float model:

1. every activation tensor left in float while all else stays int8 (which tensor costs most);
2. for the costliest tensor, what its int8 error is made of: the clipping alone, the rounding alone,
   more bits on the same range, and the rounding of values below one int8 step vs above it.

Writes build/bench/int8_diagnosis.json and prints a table (simulated: TFLite Micro agrees with the
simulator to within a few patches, see bench_convert.py).

    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python scripts/diagnose_int8.py [--model build/bench/eq-clip.tflite]
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("YAMFLASH_DATA", ROOT.parent / "shared" / "data"))


def variants(tf: Any) -> dict[str, Callable[[Any, Any], Any]]:
    """Replacements for one tensor's int8 quantization (value, [lo, hi]) -> value."""

    def step(r: Any) -> Any:
        return (r[1] - r[0]) / 255.0

    def rnd(v: Any, r: Any, s: Any) -> Any:
        return tf.clip_by_value(tf.round(v / s) * s, r[0], r[1])

    return {
        "int8 (as converted)": lambda v, r: rnd(v, r, step(r)),
        "float": lambda v, r: v,
        "clipping only": lambda v, r: tf.clip_by_value(v, r[0], r[1]),
        "rounding only (range x3)": lambda v, r: tf.clip_by_value(tf.round(v / step(r)) * step(r), r[0],
                                                                   r[0] + 3 * (r[1] - r[0])),
        "9 bits, same range": lambda v, r: rnd(v, r, (r[1] - r[0]) / 511.0),
        "10 bits, same range": lambda v, r: rnd(v, r, (r[1] - r[0]) / 1023.0),
        "exact below 1 step": lambda v, r: tf.where(v < step(r), v, rnd(v, r, step(r))),
        "exact above 1 step": lambda v, r: tf.where(v >= step(r), tf.clip_by_value(v, r[0], r[1]),
                                                    rnd(v, r, step(r))),
        "uniform noise of 1 step": lambda v, r: tf.clip_by_value(
            v + tf.random.stateless_uniform(tf.shape(v), [1, 2], -step(r) / 2, step(r) / 2), r[0], r[1]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "build" / "bench" / "eq-clip.tflite"))
    ap.add_argument("--weights", default=str(DATA / "models" / "yamnet_keras_drq_logmel_out.tflite"))
    ap.add_argument("--calib-dir", default=str(DATA / "audio" / "esc50-16k-dev" / "audio"))
    ap.add_argument("--out", default=str(ROOT / "build" / "bench" / "int8_diagnosis.json"))
    args = ap.parse_args(argv)
    if not Path(args.model).is_file():
        raise SystemExit(f"diagnose_int8: {args.model} does not exist; run scripts/bench_convert.py first "
                         "or pass --model a converted model.tflite.")

    import tensorflow as tf
    from yamflash import dataset
    from yamflash.model import fidelity
    from yamflash.model.weights import load_weights
    from yamflash.quant.flatbuffer import read_ranges
    from yamflash.quant.simulate import N_TENSORS, Simulator, forward, layer_plan

    _, ev, info = dataset.collect(args.calib_dir, None, 1000, None, seed=0)
    assert ev is not None
    ref = Simulator(load_weights(args.weights)).scores(ev.patches)
    sim = Simulator(load_weights(args.model))  # the model's own (equalized, rounded) weights, dequantized
    ranges = tf.constant(read_ranges(Path(args.model).read_bytes()), tf.float32)

    def measure(overrides: dict[int, Callable[[Any, Any], Any]]) -> dict[str, float]:
        out = [forward(tf, sim.kernels, sim.biases, tf.constant(xb, tf.float32), ranges, overrides=overrides)[1]
               for xb in sim.batches(ev.patches)]
        f = fidelity.compare(ref, np.concatenate([o.numpy() for o in out]))
        return {"top1": f["top1_agreement"], "cosine": f["cosine_mean"]}

    names = ["input"] + [p[0] for p in layer_plan()[:-1]] + ["embedding (mean)", "logits"]
    base = measure({})
    print(f"all int8 (simulated): top-1 {base['top1']:.4f}  cosine {base['cosine']:.4f}  "
          f"({len(ev.patches)} held-out patches)")
    keep_float: list[dict[str, Any]] = []
    for t in range(N_TENSORS):
        m = measure({t: lambda v, r: v})
        keep_float.append({"tensor": t, "producer": names[t], **m,
                           "top1_gain": round(m["top1"] - base["top1"], 4),
                           "cosine_gain": round(m["cosine"] - base["cosine"], 4)})
    ranked = sorted(keep_float, key=lambda r: -r["cosine_gain"])
    print("\ntensor left in float (all others int8), largest cosine gain first:")
    print(f"{'tensor':>6}  {'produced by':30s} {'top-1':>7} {'cosine':>7}")
    for r in ranked[:8]:
        print(f"{r['tensor']:>6}  {r['producer']:30s} {r['top1']:7.4f} {r['cosine']:7.4f}")
    worst = ranked[0]["tensor"]
    print(f"\ntensor {worst} ({names[worst]}): what its int8 error is made of")
    parts = {}
    for name, fn in variants(tf).items():
        parts[name] = measure({worst: fn})
        print(f"  {name:28s} top-1 {parts[name]['top1']:.4f}  cosine {parts[name]['cosine']:.4f}")
    out = {"model": str(args.model), "data": info, "all_int8_simulated": base, "keep_float": keep_float,
           "worst_tensor": {"tensor": worst, "producer": names[worst], "variants": parts}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
