"""The chip latency estimate of one .tflite: the cost model (cost.py) over its layers, the what-if layouts
(whatif.py) and the layout convert recorded in model.json (report.py). An estimate, never a chip measurement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .calibration import (
    TABLE_SOURCE,
)
from .cost import (
    DEFAULT_GEN,
    PATCH_HOP_S,
    calibration_error,
    layers_from_model,
    run,
)
from .memory import CPU_MHZ, FIRMWARE, INTERNAL_ARENA_BUDGET, Layout
from .report import recorded_layout
from .whatif import _layout_row, candidate_layouts, rewrites


def estimate(path: str | Path, measure_arena: bool = True, layout: Layout = FIRMWARE,
             gen: str = DEFAULT_GEN) -> dict[str, Any]:
    """Per-layer kernel, scratch, copies and time on the chip, plus arena and flash, for one .tflite."""
    from ..model.tflite_fb import FlatModel
    from .inspect import inspect, layer_macs

    fm = FlatModel.load(path)
    report = inspect(path, measure_arena=measure_arena)
    macs = {r["index"]: r["macs"] for r in layer_macs(fm)}
    layers = layers_from_model(path)
    res = run(layers, gen, layout)
    total_us = res["cycles"] / CPU_MHZ
    rows = []
    cum = 0.0
    for c in res["costs"]:
        us = (c.compute + c.memory) / CPU_MHZ
        cum += us
        lay, p = c.layer, c.plan
        rows.append({
            "index": lay.index, "op": lay.op, "output": fm.tensor_shape(fm.ops[lay.index].outputs[0]),
            "kernel": p.kernel, "macs": macs.get(lay.index, 0), "scratch_bytes": p.scratch,
            "copy_bytes": p.filter_copy + p.input_copy, "filter_passes": p.filter_passes,
            "external_bytes": round(c.external_bytes), "cycles": round(c.compute + c.memory),
            "compute_us": round(c.compute / CPU_MHZ, 1), "memory_us": round(c.memory / CPU_MHZ, 1),
            "us": round(us, 1), "share": us / total_us if total_us else 0.0,
            "cumulative": cum / total_us if total_us else 0.0,
            "cycles_per_mac": round((c.compute + c.memory) / macs[lay.index], 3) if macs.get(lay.index) else 0,
            "scratch_overflow": p.overflow,
        })
    unc = calibration_error()
    ms = total_us / 1000
    return {
        "path": str(path), "model_bytes": report["bytes"], "macs": report["macs"],
        "parameters": report["parameters"], "arena_bytes": report.get("arena_bytes"),
        "tflm_verdict": report["tflm_verdict"], "layers": rows,
        "esp_nn": gen, "layout": layout.name(), "layout_fields": vars(layout).copy(),
        "invoke_ms": round(ms, 1),
        "invoke_ms_range": [round(ms * (1 - unc), 1), round(ms * (1 + unc), 1)],
        "compute_ms": round(res["compute_ms"], 1), "memory_ms": round(res["memory_ms"], 1),
        "copy_bytes": res["copy_bytes"], "external_bytes": round(res["external_bytes"]),
        "chip_arena_estimate": res["arena"],
        "rtf": round(ms / 1000 / PATCH_HOP_S, 3),
        "uncertainty": round(unc, 3),
        "layouts": [_layout_row(layers, gen, lo, name) for name, lo in candidate_layouts(layout)],
        "rewrites": rewrites(layers, gen, layout),
        "internal_arena_budget": INTERNAL_ARENA_BUDGET,
        "chip_layout": recorded_layout(path),
        "basis": "ESP32-S3 @ 240 MHz, esp-tflite-micro 1.3.7 + esp-nn " + gen + " dispatch; compute fitted on "
                 + TABLE_SOURCE[gen] + "; memory from ESP-IDF's MSPI transaction phases; held-back checks: "
                 "python scripts/bench_estimate.py",
        "clock": "estimate",
    }
