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
    Check,
)
from .espnn import Layer, Plan
from .memory import CPU_MHZ, Layout

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


PUBLISHED_PORT = "published ESP32-S3 YAMNet port (arena + model in PSRAM): 500-650 ms, p95 508 ms"
