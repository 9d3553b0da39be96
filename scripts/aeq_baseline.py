"""Google's ai-edge-quantizer on a float YAMNet .tflite: the baseline row of scripts/bench_convert.py.

Runs in its own virtual environment, so the project's venv (tensorflow-cpu 2.21) never gets ai-edge-quantizer's
pinned ai-edge-litert runtime:

    python3 -m venv ~/.cache/yamflash/aeq-venv && ~/.cache/yamflash/aeq-venv/bin/pip install ai-edge-quantizer==0.10.0

bench_convert.py writes the float model and the calibration patches, then calls

    ~/.cache/yamflash/aeq-venv/bin/python scripts/aeq_baseline.py FLOAT.tflite CALIB.npy OUT_DIR ALGO[,ALGO...]

which writes OUT_DIR/aeq-<ALGO>.tflite per algorithm: the recipe ``static_wi8_ai8`` (int8 activations, per-channel
int8 weights, all ops) with the named algorithm: ``min_max_uniform_quantize`` or ``OCTAV`` (OCTAV and MSE choose
weight clips only; activation ranges are min/max of the calibration data in every static recipe of 0.10.0).
``ALGO+a16`` gives ``static_wi8_ai16`` (int16 activations; ESP-NN has no kernels for it: a reference only).
The output keeps its constant data after the flatbuffer, which TFLite Micro does not read:
bench_convert.py inlines it (quant.flatbuffer.inline_buffers). Imports nothing from yamflash.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    from ai_edge_quantizer import quantizer, recipe

    float_path, calib_path, out_dir, algorithms = argv
    calib = np.load(calib_path).astype(np.float32)
    for algo in algorithms.split(","):
        qt = quantizer.Quantizer(float_path)
        a16 = algo.endswith("+a16")  # int16 activations: a reference only, ESP-NN has no kernels for it
        key = algo.removesuffix("+a16")
        qt.load_quantization_recipe(recipe.static_wi8_ai16(algorithm_key=key) if a16 else
                                    recipe.static_wi8_ai8(algorithm_key=key))
        sig = "serving_default"
        name = _input_name(float_path, sig)
        data = {sig: [{name: p[None]} for p in calib]}
        res = qt.calibrate(data, num_threads=1)  # one thread: the same ranges every run
        out = Path(out_dir) / f"aeq-{algo}.tflite"
        qt.quantize(res, enable_progress_report=False).export_model(out, overwrite=True)
        print(f"wrote {out}", flush=True)
    return 0


def _input_name(float_path: str, sig: str) -> str:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=float_path).get_signature_runner(sig)
    names = list(runner.get_input_details())
    if len(names) != 1:
        raise SystemExit(f"aeq_baseline: expected one input in signature {sig}, found {names}")
    return names[0]


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
