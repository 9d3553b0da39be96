"""Predict a model's cost on an ESP32-S3 with ESP-NN before flashing: latency per layer, arena, flash.

Why a cost model and not a measurement: users compare models (full YAMNet, a custom head, a compact
model) before they own a board, and the virtual board's timings are host timings that say nothing
about the chip. The model is deliberately simple: cycles = MACs x (cycles per MAC of the ESP-NN kernel
that runs the layer), plus a per-element cost for the non-MAC ops, at 240 MHz.

Sources of the constants (read, not copied):
- espressif/esp-nn, README.md (commit 0798b58f), "Kernelwise performance for s8 versions", ESP32-S3 at
  240 MHz, QPI flash 80 MHz, 64 KB data cache, data in external memory, ticks of the "Optimized" column.
- espressif/esp-tflite-micro, README.md (commit 01a78d0a), "Performance Comparison": Person Detection
  `invoke()` takes 54 ms on an ESP32-S3 at 240 MHz with ESP-NN (2300 ms without).

Uncertainty: these are single-kernel benchmarks on small tensors. Applied to MobileNet v1 0.25 at
96x96x1 (the person-detection model; 7.16 M MACs by the architecture of Howard et al. 2017), the model
predicts 57 ms against the published 54 ms (+6 %). Expect +-30 % for YAMNet-sized models: its last
pointwise layers reuse each weight at only 6 positions, so they may be bound by PSRAM/flash bandwidth
rather than by the MAC rate (flagged per layer as ``low_reuse``), and cache behaviour differs from the
benchmarks'. Treat the estimate as a ranking and an order of magnitude; measure with `yamflash bench`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

CPU_HZ = 240_000_000
PATCH_HOP_S = 0.48  # a new patch every 48 frames of 10 ms: the real-time budget of one inference
UNCERTAINTY = 0.30

# Cycles per MAC, each one published ticks / MACs of that benchmark's shape (esp-nn README, see above).
CPM_POINTWISE_64CH = 461_398 / (10 * 10 * 64 * 64)  # convolution input(10,10) filter 64x1x1x64 -> 1.13
CPM_POINTWISE_16CH = 43_578 / (8 * 8 * 16 * 16)  # convolution input(8,8) filter 16x1x1x16 -> 2.66
CPM_CONV_3X3 = 643_689 / (8 * 8 * 64 * 3 * 3 * 3)  # convolution input(10,10) filter 64x3x3x3, pad 0 -> 5.82
CPM_DEPTHWISE_3X3 = 191_931 / (16 * 16 * 16 * 3 * 3)  # depthwise input(18,18) pad 0 filter 1x3x3x16 -> 5.21
CPM_FULLY_CONNECTED = 4_439 / (265 * 3)  # fully connected len 265, ch 3 -> 5.58
CYCLES_PER_ELEMENT = 71_644 / 1615  # elementwise_add size 1615 -> 44.4; used for MEAN, LOGISTIC, ADD, ...
COPY_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")  # TFLM aliases or memcpy's these: counted as free

# Cross-check (see module docstring): person detection, published vs this model's prediction.
CHECK_PERSON_DETECTION_MS = (54.0, 57.0)


def cycles_per_mac(op: str, in_channels: int, kernel: tuple[int, int]) -> float:
    """Cycles per MAC for one layer: the benchmark closest to its kernel type and input depth.

    Pointwise convolutions interpolate (in log2 of input channels) between the 16- and 64-channel
    benchmarks, since few input channels leave the S3's 16-lane vector unit partly idle.
    """
    if op == "DEPTHWISE_CONV_2D":
        return CPM_DEPTHWISE_3X3
    if op in ("FULLY_CONNECTED", "BATCH_MATMUL"):
        return CPM_FULLY_CONNECTED
    if kernel != (1, 1):
        return CPM_CONV_3X3
    if in_channels <= 16:
        return CPM_POINTWISE_16CH
    if in_channels >= 64:
        return CPM_POINTWISE_64CH
    t = (math.log2(in_channels) - 4) / 2
    return CPM_POINTWISE_16CH + (CPM_POINTWISE_64CH - CPM_POINTWISE_16CH) * t


def estimate(path: str | Path, measure_arena: bool = True) -> dict[str, Any]:
    """Per-layer MACs and estimated microseconds on the chip, plus arena and flash, for one .tflite."""
    from .inspect_model import inspect, layer_macs
    from .tflite_fb import FlatModel

    fm = FlatModel.load(path)
    report = inspect(path, measure_arena=measure_arena)
    by_index = {r["index"]: r for r in layer_macs(fm)}
    layers: list[dict[str, Any]] = []
    for op in fm.ops:
        row: dict[str, Any] = {"index": op.index, "op": op.name, "output": fm.tensor_shape(op.outputs[0])}
        if op.index in by_index:
            m = by_index[op.index]
            w = m["weights"]
            kernel = (w[1], w[2]) if len(w) == 4 else (1, 1)
            in_ch = fm.tensor_shape(op.inputs[0])[-1]
            cpm = cycles_per_mac(op.name, in_ch, kernel)
            positions = int(np.prod(m["output"][:-1]))
            row.update(macs=m["macs"], cycles_per_mac=round(cpm, 3), cycles=m["macs"] * cpm,
                       low_reuse=op.name in ("CONV_2D", "FULLY_CONNECTED") and positions < 16
                       and int(np.prod(w)) >= 64 * 1024)
        elif op.name in COPY_OPS:
            row.update(macs=0, cycles=0.0)
        else:
            elements = int(np.prod(fm.tensor_shape(op.inputs[0]) or [1]))
            row.update(macs=0, elements=elements, cycles=elements * CYCLES_PER_ELEMENT)
        row["us"] = row["cycles"] / CPU_HZ * 1e6
        layers.append(row)
    total_us = sum(r["us"] for r in layers)
    cum = 0.0
    for r in layers:
        cum += r["us"]
        r["share"] = r["us"] / total_us if total_us else 0.0
        r["cumulative"] = cum / total_us if total_us else 0.0
        r["us"] = round(r["us"], 1)
        r["cycles"] = round(r["cycles"])
    return {
        "path": str(path), "model_bytes": report["bytes"], "macs": report["macs"],
        "parameters": report["parameters"], "arena_bytes": report.get("arena_bytes"),
        "tflm_verdict": report["tflm_verdict"], "layers": layers,
        "invoke_ms": round(total_us / 1000, 1),
        "invoke_ms_range": [round(total_us / 1000 * (1 - UNCERTAINTY), 1),
                            round(total_us / 1000 * (1 + UNCERTAINTY), 1)],
        "rtf": round(total_us / 1e6 / PATCH_HOP_S, 3),
        "uncertainty": UNCERTAINTY,
        "basis": "ESP32-S3 @ 240 MHz with ESP-NN; constants from espressif/esp-nn README.md kernel ticks; "
                 "checked against esp-tflite-micro's person detection (57 ms predicted, 54 ms published)",
        "clock": "estimate",
    }


def by_op_type(est: dict[str, Any]) -> list[dict[str, Any]]:
    """Layers summed per op type, largest first, with share and cumulative share (like a TFLM profile)."""
    sums: dict[str, float] = {}
    for r in est["layers"]:
        sums[r["op"]] = sums.get(r["op"], 0.0) + r["us"]
    total = sum(sums.values()) or 1.0
    rows, cum = [], 0.0
    for op, us in sorted(sums.items(), key=lambda kv: -kv[1]):
        cum += us
        rows.append({"op": op, "us": round(us, 1), "share": us / total, "cumulative": cum / total})
    return rows


def render(est: dict[str, Any], per_layer: bool = False) -> str:
    """Plain-text summary for the CLI (rich tables are kept to validate/bench, which have more to show)."""
    lo, hi = est["invoke_ms_range"]
    lines = [f"estimate for ESP32-S3 + ESP-NN (not a measurement): {est['path']}",
             f"  {est['macs'] / 1e6:.1f} M MACs, invoke ~{est['invoke_ms']:.0f} ms ({lo:.0f}-{hi:.0f} ms, "
             f"+-{est['uncertainty']:.0%}), real-time factor {est['rtf']:.2f} of the 0.48 s hop",
             f"  flash {est['model_bytes']:,} bytes model"
             + (f", arena {est['arena_bytes']:,} bytes" if est.get("arena_bytes") else "")]
    if est["tflm_verdict"] != "runs":
        lines.append(f"  warning: TFLite Micro {est['tflm_verdict']}: the int8 ESP-NN cost model does not apply")
    for r in by_op_type(est):
        lines.append(f"    {r['op']:<20} {r['us'] / 1000:8.1f} ms  {r['share']:6.1%}  cum {r['cumulative']:6.1%}")
    if per_layer:
        lines.append(f"  {'#':>3} {'op':<20} {'output':<18} {'MACs':>11} {'c/MAC':>6} {'ms':>7}")
        for r in est["layers"]:
            flag = "  low weight reuse: may be memory-bound" if r.get("low_reuse") else ""
            lines.append(f"  {r['index']:>3} {r['op']:<20} {str(r['output']):<18} {r.get('macs', 0):>11,} "
                         f"{r.get('cycles_per_mac', 0):>6.2f} {r['us'] / 1000:>7.2f}{flag}")
    lines.append(f"  basis: {est['basis']}")
    return "\n".join(lines)
