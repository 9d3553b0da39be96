"""Predict an Invoke on an ESP32-S3 with ESP-NN before flashing: kernel, scratch, copies and time per layer.

Why a model and not a measurement: there is no board here, users compare models and memory layouts before
they own one, and the virtual board's timings are host timings that say nothing about the chip.

What it models, per op (see :mod:`yamflash.chip.espnn` for the dispatch, :mod:`yamflash.chip.memory` for the
memory, :mod:`yamflash.chip.calibration` for the published figures):

1. the kernel esp-tflite-micro v1.3.7 + ESP-NN run for the op's shapes, the scratch it requests in Prepare
   and the bytes it copies into that scratch on every Invoke (filters re-laid or converted, inputs padded);
2. compute: the kernel's inner-loop work (instructions of the 1x1 and FC kernels counted from their
   assembly, 16-lane vector MACs of the general conv, MACs of the depthwise kernels, elements of the rest)
   times cycles per unit fitted on esp-nn's kernel tables, plus 0.5 cycle per byte copied;
3. memory: every byte read from flash or PSRAM through the data cache that misses (weights are re-streamed
   once per pass a kernel makes over them when they do not fit in the cache; activations and scratch miss
   when the arena is in PSRAM), priced by the SPI transaction of a line fill and of a write-back.

It is calibrated on the kernel tables (fit set) and checked against whole-model Invoke times nobody fitted
anything to (held-back set): ``python scripts/bench_estimate.py`` prints both and fails beyond 20 %.
It remains an estimate: the cache is modelled as "fits or streams", not simulated, and the held-back
set is four figures. ``yamflash bench --board`` measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from . import espnn
from .calibration import (
    BENCH_COLD,
    BENCH_LAYOUT,
    CHECKS,
    CODE_OF,
    KERNEL_TABLES,
    MEMCPY_CYCLES_PER_BYTE,
    MODELS,
    TABLE_SOURCE,
    Check,
)
from .espnn import Layer, Plan
from .memory import CPU_MHZ, FIRMWARE, INTERNAL_ARENA_BUDGET, Layout

CPU_HZ = CPU_MHZ * 1_000_000
PATCH_HOP_S = 0.48  # a new patch every 48 frames of 10 ms: the real-time budget of one inference
DEFAULT_GEN = "1.2"  # the newest esp-nn whose source we can read (the firmware pins 1.4.1, not public)
SUM_CYCLES_PER_ELEMENT = 2.0  # a reference reduction: one load and one add per element (single-issue LX7)


# ---- fitting the compute constants on a kernel table -------------------------------------------------------

UNITS = ("instr", "pw_call", "call", "vec", "im2col", "c3x3", "dw8", "dw16", "add", "mul", "max_pool", "avg_pool",
         "relu", "softmax")


def _expand(work: dict[str, float]) -> dict[str, float]:
    """Work in the fitted units: instructions counted from the 1x1 and FC kernels share one cycles/instruction."""
    out: dict[str, float] = {}
    for unit, n in work.items():
        key = "instr" if unit in ("pw_i", "fc_i") else unit
        out[key] = out.get(key, 0.0) + n
    return out


@cache
def constants(gen: str) -> dict[str, float]:
    """Cycles per unit of inner-loop work for a kernel table, solved exactly from its rows.

    Every row is an equation (work units x cycles = published ticks - the benchmark's modelled misses); the
    system is square and solved exactly. The two 1x1 rows give the affine 1x1 model: cycles per counted
    instruction and a per-call constant (negative for the 2022 and v1.1 tables: there the instruction count
    overstates the small 16-channel row by ~8-12k cycles, a misfit the constant absorbs); the FC row gives the
    FC per-call cost, every other row its own unit.
    Units no row of this table uses come from a table whose kernel is the same code (:data:`SAME_CODE`) or
    fall back to reference-kernel costs.
    """
    rows = KERNEL_TABLES[gen]
    code = CODE_OF[gen]
    eqs, rhs = [], []
    for r in rows:
        p = _plan(r.layer, code)
        w = _expand(p.work)
        stall = _bench_stalls(r.layer, p) if r.external and BENCH_COLD[gen] else 0.0
        copy = (p.filter_copy + p.input_copy) * MEMCPY_CYCLES_PER_BYTE
        eqs.append([w.get(u, 0.0) for u in UNITS])
        rhs.append(r.ticks - stall - copy)
    a, b = np.array(eqs), np.array(rhs)
    used = [i for i, u in enumerate(UNITS) if a[:, i].any()]
    sol = np.linalg.lstsq(a[:, used], b, rcond=None)[0]
    cyc = {UNITS[i]: float(v) for i, v in zip(used, sol, strict=True)}
    for unit, donor in SAME_CODE.get(gen, {}).items():
        cyc.setdefault(unit, constants(donor)[unit])
    ansi_add = next(r for r in rows if r.function == "elementwise_add")
    cyc["ref"] = ansi_add.ansi_ticks / ansi_add.layer.elements  # TFLM reference kernel, per element
    ansi_dw = next(r for r in rows if r.function == "depthwise conv")
    cyc["dw_c"] = ansi_dw.ansi_ticks / (ansi_dw.layer.out_bytes * 9)
    cyc.setdefault("softmax", cyc["ref"])
    cyc["sum"] = SUM_CYCLES_PER_ELEMENT
    cyc["copy"] = MEMCPY_CYCLES_PER_BYTE
    return cyc


# A unit no row of a table measures, taken from the table of a generation whose kernel for it is the same code
# (esp_nn_conv_s8_filter_aligned_input_padded_esp32s3.S: v1.2 only adds a skip when input_offset is 0).
SAME_CODE = {"1.2": {"vec": "1.1"}, "2022": {"vec": "1.1"}}


def _bench_stalls(lay: Layer, p: Plan) -> float:
    """Misses of an esp-nn v1.1.2 kernel benchmark: every operand and scratch copy cold in PSRAM, once."""
    line = BENCH_LAYOUT.line
    fill = BENCH_LAYOUT.psram_bus.read_cycles(line)
    cold = lay.in_bytes + lay.weight_bytes + lay.out_bytes + p.filter_copy + p.input_copy
    return cold / line * fill


def _plan(lay: Layer, code: str) -> Plan:
    p = espnn.plan(lay, "1.1" if code == "2022" else code)
    if code == "2022":  # esp-nn @13d77d1: 1x1 and mult-8 convs convert the whole filter to int16 every Invoke
        if lay.op == "CONV_2D" and lay.inp[2] % 8 == 0:
            p.filter_copy = 2 * lay.weight_bytes
            p.kernel = "esp_nn_conv_s16_mult8_1x1_esp32s3" if lay.kernel == (1, 1) else \
                "esp_nn_conv_s16_mult8_esp32s3"
        if lay.op == "DEPTHWISE_CONV_2D" and p.kernel.startswith("esp_nn_depthwise_conv_s8_mult1_3x3") \
                and lay.pad == (0, 0):
            if lay.stride == (1, 1):
                p.input_copy = 0  # ran in place
            else:  # stride 2 without padding went to the int16 kernel
                p.kernel, p.input_copy = "esp_nn_depthwise_conv_s16_mult1_3x3_esp32s3", 2 * lay.in_bytes
                p.filter_copy = 2 * lay.weight_bytes
                p.work = {"dw16": p.work["dw8"]}
    if code == "2022" and lay.op == "CONV_2D" and lay.inp[2] == 3 and lay.kernel == (3, 3) and lay.pad == (0, 0):
        p.kernel, p.work, p.filter_copy = "esp_nn_conv_s8_pad_valid_ch3_3x3", {"c3x3": p.work["vec"]}, 0
    if lay.op == "MEAN":
        p.work = {"sum": lay.elements, "ref": lay.out_bytes}
    if lay.op in ("RELU", "RELU6"):
        p.work, p.reference, p.kernel = {"relu": lay.elements}, False, "esp_nn_relu6_s8_esp32s3"
    return p


# ---- one layer on the chip -----------------------------------------------------------------------------

@dataclass
class LayerCost:
    layer: Layer
    plan: Plan
    compute: float  # cycles
    memory: float  # stall cycles
    external_bytes: float  # bytes moved over the MSPI bus (fills + write-backs)


def layer_cost(lay: Layer, p: Plan, layout: Layout, cyc: dict[str, float]) -> LayerCost:
    """Compute and memory-stall cycles of one layer under a layout."""
    line = layout.line
    budget = layout.cache_bytes // 2  # share of the cache a stream may keep (the rest: the other operands)
    moved = 0.0
    stall = 0.0

    def read(region: str, nbytes: float) -> None:
        nonlocal moved, stall
        bus = layout.bus(region)
        if bus is not None and nbytes > 0:
            moved += nbytes
            stall += nbytes / line * bus.read_cycles(line)

    def write(region: str, nbytes: float) -> None:  # write-allocate fill now, write-back later
        nonlocal moved, stall
        bus = layout.bus(region)
        if bus is not None and nbytes > 0:
            moved += 2 * nbytes
            stall += nbytes / line * (bus.read_cycles(line) + bus.write_cycles(line))

    arena = layout.arena
    weights = lay.weight_bytes + lay.const_bytes
    if p.filter_copy:
        read(layout.model, weights)
        write(arena, p.filter_copy)
        if p.filter_copy > budget:
            read(arena, p.filter_copy * p.filter_passes)
    else:
        read(layout.model, weights if weights <= budget else weights * p.filter_passes)
    in_miss = max(0, lay.in_bytes - budget)  # the producer just wrote it: its last `budget` bytes are cached
    read(arena, in_miss)
    if p.input_copy:
        write(arena, p.input_copy)
        if p.input_copy > budget:
            read(arena, p.input_copy)
    write(arena, lay.out_bytes)
    if lay.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        read(layout.persistent_region, 8 * lay.out[2])  # per-channel multiplier and shift (int32 each)
    work = _expand(p.work)
    compute = sum(n * cyc.get(u, cyc["ref"]) for u, n in work.items())
    compute += (p.filter_copy + p.input_copy) * MEMCPY_CYCLES_PER_BYTE
    return LayerCost(lay, p, compute, stall, moved)


# ---- graphs -----------------------------------------------------------------------------------------------

def chip_arena(layers: list[Layer], gen: str = DEFAULT_GEN) -> dict[str, int]:
    """Arena TFLite Micro would plan on the chip, approximated: the largest (input + output + ESP-NN scratch)
    of any op of a chain (a greedy planner's lower bound), plus per-channel quantization arrays and tensor
    structs in the persistent part. chip_arena.py measures the real figure; this one ranks layouts."""
    code = "1.1" if gen == "2022" else gen
    peak, at = 0, -1
    for lay in layers:
        p = espnn.plan(lay, code)
        live = lay.in_bytes + lay.out_bytes + p.scratch
        if live > peak:
            peak, at = live, lay.index
    persistent = sum(8 * lay.out[2] for lay in layers if lay.op in ("CONV_2D", "DEPTHWISE_CONV_2D",
                                                                    "FULLY_CONNECTED"))
    persistent += 64 * len(layers) + 3 * 16 * len(layers)
    largest = max((espnn.plan(lay, code).scratch for lay in layers), default=0)
    return {"nonpersistent": peak, "persistent": persistent, "total": peak + persistent, "peak_op": at,
            "largest_scratch": largest}


def run(layers: list[Layer], gen: str, layout: Layout) -> dict[str, Any]:
    """Per-layer and total cost of one Invoke of ``layers`` with esp-nn generation ``gen`` in ``layout``."""
    cyc = constants(gen)
    code = CODE_OF[gen]
    costs = [layer_cost(lay, _plan(lay, code), layout, cyc) for lay in layers]
    total = sum(c.compute + c.memory for c in costs)
    return {"gen": gen, "layout": layout, "costs": costs, "cycles": total, "ms": total / CPU_HZ * 1000,
            "compute_ms": sum(c.compute for c in costs) / CPU_HZ * 1000,
            "memory_ms": sum(c.memory for c in costs) / CPU_HZ * 1000,
            "copy_bytes": sum(c.plan.filter_copy + c.plan.input_copy for c in costs),
            "external_bytes": sum(c.external_bytes for c in costs), "arena": chip_arena(layers, gen)}


def check(c: Check) -> dict[str, Any]:
    """One held-back published figure against the estimate."""
    r = run(MODELS[c.model], c.gen, c.layout)
    return {"name": c.name, "published_ms": c.published_ms, "estimate_ms": round(r["ms"], 1),
            "error": r["ms"] / c.published_ms - 1, "gen": c.gen, "layout": c.layout.name(), "source": c.source,
            "assumptions": c.assumptions, "range": c.published_range}


def fit_residuals(gen: str) -> list[dict[str, Any]]:
    """Each kernel-table row against the fitted model (the fit set: near zero by construction)."""
    cyc = constants(gen)
    out = []
    for r in KERNEL_TABLES[gen]:
        p = _plan(r.layer, CODE_OF[gen])
        w = _expand(p.work)
        ticks = sum(n * cyc.get(u, cyc["ref"]) for u, n in w.items())
        ticks += (p.filter_copy + p.input_copy) * MEMCPY_CYCLES_PER_BYTE
        ticks += _bench_stalls(r.layer, p) if r.external and BENCH_COLD[gen] else 0.0
        out.append({"function": r.function, "data": r.data, "published": r.ticks, "estimate": round(ticks),
                    "error": ticks / r.ticks - 1, "kernel": p.kernel})
    return out


@cache
def calibration_error() -> float:
    """Largest held-back error: the uncertainty quoted with every estimate."""
    return max(abs(check(c)["error"]) for c in CHECKS)


# ---- a .tflite as layers ----------------------------------------------------------------------------------

def layers_from_model(path: str | Path) -> list[Layer]:
    """The layers of a .tflite as ESP-NN sees them: shapes, strides, TFLite's padding, filter alignment."""
    from ..model.tflite_fb import FlatModel

    fm = FlatModel.load(path)
    root = fm.s.Model.GetRootAsModel(Path(path).read_bytes(), 0)

    def offset(t: int) -> int:
        b = root.Buffers(fm.tensor(t).buffer)
        o = b._tab.Offset(4)
        return int(b._tab.Vector(o)) if o else 0

    def hwc(shape: list[int]) -> tuple[int, int, int]:
        s = [int(x) for x in shape] or [1]
        if len(s) == 4:
            return s[1], s[2], s[3]
        if len(s) == 3:
            return 1, s[1], s[2]
        return 1, 1, int(np.prod(s[1:])) if len(s) > 1 else s[0]

    layers = []
    for op in fm.ops:
        ins = [i for i in op.inputs if i >= 0]
        ishape, oshape = fm.tensor_shape(ins[0]) if ins else [1], fm.tensor_shape(op.outputs[0])
        inp, out = hwc(ishape), hwc(oshape)
        o = op.options
        elements = int(np.prod(ishape or [1]))
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = fm.tensor_shape(ins[1])
            k = (w[1], w[2])
            s = (getattr(o, "strideH", 1) or 1, getattr(o, "strideW", 1) or 1)
            same = getattr(o, "padding", 0) == fm.s.Padding.SAME
            pad = tuple(max(0, (out[i] - 1) * s[i] + k[i] - inp[i]) // 2 if same else 0 for i in (0, 1))
            mult = max(1, out[2] // max(1, inp[2])) if op.name == "DEPTHWISE_CONV_2D" else 1
            bias = fm.tensor_bytes(ins[2]) if len(ins) > 2 else None
            layers.append(Layer(op.index, op.name, inp, out, k, s, (pad[0], pad[1]), mult,
                                weight_bytes=len(fm.tensor_bytes(ins[1]) or b""),
                                const_bytes=len(bias or b""), filter_offset=offset(ins[1])))
        elif op.name in ("FULLY_CONNECTED", "BATCH_MATMUL"):
            w = fm.tensor_shape(ins[1])
            units, depth = w[0], w[-1]
            batch = max(1, int(np.prod(oshape)) // max(1, units))
            bias = fm.tensor_bytes(ins[2]) if len(ins) > 2 else None
            layers.append(Layer(op.index, "FULLY_CONNECTED", (1, batch, depth), (1, batch, units),
                                weight_bytes=len(fm.tensor_bytes(ins[1]) or b""), const_bytes=len(bias or b""),
                                filter_offset=offset(ins[1]), elements=elements))
        elif op.name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            k = (getattr(o, "filterHeight", 1), getattr(o, "filterWidth", 1))
            s = (getattr(o, "strideH", 1), getattr(o, "strideW", 1))
            layers.append(Layer(op.index, op.name, inp, out, k, s, elements=elements))
        else:
            layers.append(Layer(op.index, op.name, inp, out, elements=elements))
    return layers


# ---- the public estimate ----------------------------------------------------------------------------------

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


PUBLISHED_PORT = "published ESP32-S3 YAMNet port (arena + model in PSRAM): 500-650 ms, p95 508 ms"


def recorded_layout(path: str | Path) -> dict[str, Any] | None:
    """The chip layout `convert` chose and recorded in the model.json beside ``path`` (target/layout.py), when
    that model.json describes exactly this file: rewrites applied, the estimate per board, the unrewritten one."""
    import hashlib
    import json

    p = Path(path)
    try:
        m = json.loads((p.parent / "model.json").read_text())
        if m["model"]["sha256"] != hashlib.sha256(p.read_bytes()).hexdigest():
            return None
        lay = m["layout"]
        return {"rewrite": lay["rewrite"], "chosen": lay["chosen"], "unrewritten": lay["unrewritten"],
                "bit_exact_check": lay["bit_exact_check"], "chip_arena_measured": (m.get("arena") or {})
                .get("chip_espnn"), "published": PUBLISHED_PORT}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def layout_lines(lay: dict[str, Any]) -> list[str]:
    """The recorded chip layout as text (inspect --estimate, bench --estimate)."""
    chk = lay["bit_exact_check"]
    exact = (f"bit-exact on {chk['patches']} real patches in TFLite Micro" if chk.get("identical")
             else "no rewrite" if not chk.get("patches") else "check failed: unrewritten")
    out = [f"  chip layout chosen by convert (model.json): {lay['rewrite']} ({exact})"]
    for board, c in lay["chosen"].items():
        out.append(f"    {board:<14} {c['layout']:<34} ~{c['invoke_ms']:.0f} ms per Invoke, real-time factor "
                   f"{c['invoke_ms'] / 1000 / PATCH_HOP_S:.2f}")
    u = lay["unrewritten"]
    arena = f"; chip arena measured {lay['chip_arena_measured']:,} B" if lay.get("chip_arena_measured") else ""
    out.append(f"    as converted, unrewritten: ~{u['invoke_ms']:.0f} ms ({u['layout']}){arena}")
    out.append(f"    for comparison: the {lay['published']}")
    return out


# ---- layouts and rewrites (what-ifs on shapes; convert's output is not changed) ---------------------------

def candidate_layouts(base: Layout = FIRMWARE) -> list[tuple[str, Layout]]:
    """Layouts the firmware can use on the board of ``base`` (same PSRAM kind and cache settings). An internal
    arena keeps TFLite Micro's persistent part in a separate PSRAM buffer, so internal RAM holds only the
    tensors and ESP-NN's scratch."""
    return [
        ("arena PSRAM, model PSRAM (SPIFFS copy)", base.with_(arena="psram", model="psram", persistent=None)),
        ("arena PSRAM, model mmap flash", base.with_(arena="psram", model="flash", persistent=None)),
        ("arena internal, model PSRAM", base.with_(arena="internal", model="psram", persistent="psram")),
        ("arena internal, model mmap flash", base.with_(arena="internal", model="flash", persistent="psram")),
    ]


def _layout_row(layers: list[Layer], gen: str, layout: Layout, name: str) -> dict[str, Any]:
    r = run(layers, gen, layout)
    arena = r["arena"]
    need = arena["nonpersistent"] if layout.persistent_region != layout.arena else arena["total"]
    fits = layout.arena != "internal" or need <= INTERNAL_ARENA_BUDGET
    return {"name": name, "invoke_ms": round(r["ms"], 1), "compute_ms": round(r["compute_ms"], 1),
            "memory_ms": round(r["memory_ms"], 1), "arena_estimate": arena["total"], "internal_need": need
            if layout.arena == "internal" else 0, "fits": fits,
            "why_not": "" if fits else f"needs ~{need:,} B of internal RAM > {INTERNAL_ARENA_BUDGET:,} B"}


def split_pointwise(layers: list[Layer], max_scratch: int) -> list[Layer]:
    """What-if: each 1x1 CONV_2D whose ESP-NN scratch exceeds ``max_scratch`` split along its output channels
    into convs that each ask for at most that much, joined by a CONCATENATION (bit-exact: each output channel
    is computed from the same input, weights and per-channel quantization)."""
    out: list[Layer] = []
    for lay in layers:
        p = espnn.plan(lay, "1.2")
        if lay.op != "CONV_2D" or lay.kernel != (1, 1) or p.scratch <= max_scratch:
            out.append(lay)
            continue
        k = lay.out[2]
        parts = 2
        while True:
            if k % parts == 0:
                piece = Layer(lay.index, lay.op, lay.inp, (lay.out[0], lay.out[1], k // parts), lay.kernel,
                              lay.stride, lay.pad, 1, lay.weight_bytes // parts, lay.const_bytes // parts,
                              lay.filter_offset)
                if espnn.plan(piece, "1.2").scratch <= max_scratch or k // parts <= 8:
                    break
            parts += 1
        out.extend([piece] * parts)
        out.append(Layer(lay.index, "CONCATENATION", lay.out, lay.out, elements=lay.out_bytes))
    return out


def pad_positions(layers: list[Layer]) -> list[Layer]:
    """What-if: a 1x1 CONV_2D over P positions with P % 8 != 0 runs ESP-NN's one-position loop for the last
    P % 8 positions, streaming the whole filter once per position (all of them when P < 8). RESHAPE the
    input to 1 x P, PAD it with the input zero point to a multiple of 8 positions, convolve, STRIDED_SLICE
    the P real outputs: bit-exact (positions of a 1x1 conv are independent), one filter pass per 8."""
    out: list[Layer] = []
    for lay in layers:
        pos = lay.inp[0] * lay.inp[1]
        if lay.op != "CONV_2D" or lay.kernel != (1, 1) or lay.stride != (1, 1) or pos % 8 == 0 or pos > 64:
            out.append(lay)
            continue
        p8 = (pos + 7) // 8 * 8
        c, k = lay.inp[2], lay.out[2]
        out.append(Layer(lay.index, "PAD", (1, pos, c), (1, p8, c), elements=p8 * c))
        out.append(Layer(lay.index, lay.op, (1, p8, c), (1, p8, k), (1, 1), (1, 1), (0, 0), 1,
                         lay.weight_bytes, lay.const_bytes, lay.filter_offset))
        out.append(Layer(lay.index, "STRIDED_SLICE", (1, p8, k), (1, pos, k), elements=pos * k))
    return out


def stem_as_depthwise(layers: list[Layer]) -> list[Layer]:
    """What-if: a CONV_2D over a 1-channel input written as DEPTHWISE_CONV_2D with depth multiplier = its
    output channels (what TensorFlow's converter did to person detection's stem). Same arithmetic per output
    channel; ESP-NN then runs its int16 depth-multiplier kernel instead of a general conv that wastes 13 of 16
    vector lanes. Bit-exactness in TFLite Micro + ESP-NN is to be proved by a test, as for every rewrite."""
    out = []
    for lay in layers:
        if lay.op == "CONV_2D" and lay.inp[2] == 1 and lay.kernel != (1, 1):
            lay = Layer(lay.index, "DEPTHWISE_CONV_2D", lay.inp, lay.out, lay.kernel, lay.stride, lay.pad,
                        lay.out[2], lay.weight_bytes, lay.const_bytes, lay.filter_offset)
        out.append(lay)
    return out


REWRITES = {
    "as converted": lambda ls: ls,
    "pad 1x1 positions to 8": pad_positions,
    "split 1x1 (scratch <= 32 KB)": lambda ls: split_pointwise(ls, 32 * 1024),
    "split 1x1 (<= 16 KB) + pad positions": lambda ls: pad_positions(split_pointwise(ls, 16 * 1024)),
    "split 1x1 (<= 32 KB) + pad positions": lambda ls: pad_positions(split_pointwise(ls, 32 * 1024)),
    "split (<= 32 KB) + pad + stem as depthwise":
        lambda ls: stem_as_depthwise(pad_positions(split_pointwise(ls, 32 * 1024))),
    "split (<= 16 KB) + pad + stem as depthwise":
        lambda ls: stem_as_depthwise(pad_positions(split_pointwise(ls, 16 * 1024))),
}


def rewrites(layers: list[Layer], gen: str = DEFAULT_GEN, base: Layout = FIRMWARE) -> list[dict[str, Any]]:
    """Every layout x rewrite (what-ifs on shapes), fastest first among those whose arena fits."""
    rows = []
    for vname, fn in REWRITES.items():
        lays = fn(layers)
        overflow = sum(espnn.plan(lay, "1.1" if gen == "2022" else gen).overflow for lay in lays)
        for lname, lo in candidate_layouts(base):
            r = _layout_row(lays, gen, lo, lname)
            r["rewrite"] = vname
            r["scratch_overflow"] = overflow
            rows.append(r)
    return sorted(rows, key=lambda r: (not r["fits"], r["invoke_ms"]))


# ---- text ---------------------------------------------------------------------------------------------------

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
    """Plain-text summary for the CLI: totals, layouts, per-op-type and (optionally) per-layer tables."""
    lo, hi = est["invoke_ms_range"]
    arena = est["chip_arena_estimate"]
    lines = [f"estimate for ESP32-S3 + ESP-NN (not a measurement): {est['path']}",
             f"  layout: {est['layout']}; esp-nn {est['esp_nn']} kernels",
             f"  {est['macs'] / 1e6:.1f} M MACs, invoke ~{est['invoke_ms']:.0f} ms ({lo:.0f}-{hi:.0f} ms, "
             f"+-{est['uncertainty']:.0%} = worst held-back check), real-time factor {est['rtf']:.2f} of the "
             f"0.48 s hop",
             f"  compute {est['compute_ms']:.0f} ms + memory stalls {est['memory_ms']:.0f} ms; "
             f"{est['copy_bytes']:,} bytes copied into scratch and {est['external_bytes']:,} bytes over the "
             f"flash/PSRAM bus per Invoke",
             f"  flash {est['model_bytes']:,} bytes model"
             + (f", host arena {est['arena_bytes']:,} bytes" if est.get("arena_bytes") else "")
             + f"; chip arena ~{arena['total']:,} bytes (largest ESP-NN scratch {arena['largest_scratch']:,})"]
    if est["tflm_verdict"] != "runs":
        lines.append(f"  warning: TFLite Micro {est['tflm_verdict']}: the int8 ESP-NN cost model does not apply")
    lines.append("  layouts (same esp-nn, same cache):")
    for r in est["layouts"]:
        lines.append(f"    {r['name']:<40} {r['invoke_ms']:7.0f} ms  arena ~{r['arena_estimate']:>9,} B"
                     + ("" if r["fits"] else f"  does not fit: {r['why_not']}"))
    if est.get("chip_layout"):
        lines += layout_lines(est["chip_layout"])
    best = [r for r in est.get("rewrites", []) if r["fits"]][:4]
    if best:
        lines.append(f"  what-if graph rewrites on this graph's shapes (internal RAM budget assumed "
                     f"{INTERNAL_ARENA_BUDGET // 1024} KB; fastest that fit):")
        for r in best:
            lines.append(f"    {r['rewrite']:<42} {r['name']:<34} {r['invoke_ms']:6.0f} ms  "
                         f"arena ~{r['arena_estimate']:,} B")
    over = [r for r in est["layers"] if r.get("scratch_overflow")]
    if over:
        lines.append("  warning: esp-nn " + est["esp_nn"] + " writes past its scratch request in op(s) "
                     + ", ".join(f"#{r['index']} (+{r['scratch_overflow']:,} B)" for r in over)
                     + ": the depthwise pad_end copy is not tiled like the size function assumes")
    lines.append("  per op type:")
    for r in by_op_type(est):
        lines.append(f"    {r['op']:<20} {r['us'] / 1000:8.1f} ms  {r['share']:6.1%}  cum {r['cumulative']:6.1%}")
    if per_layer:
        lines.append(f"  {'#':>3} {'op':<18} {'output':<17} {'kernel':<44} {'scratch':>9} {'copied':>9} "
                     f"{'passes':>6} {'ms':>7}")
        for r in est["layers"]:
            lines.append(f"  {r['index']:>3} {r['op']:<18} {str(r['output']):<17} {r['kernel'][:44]:<44} "
                         f"{r['scratch_bytes']:>9,} {r['copy_bytes']:>9,} {r['filter_passes']:>6} "
                         f"{r['us'] / 1000:>7.2f}")
    lines.append(f"  basis: {est['basis']}")
    return "\n".join(lines)
