"""What-if layouts and rewrites on shapes, priced by the estimate: which rewrite pays on which layout
(chip/rewrite.py then rewrites the real graph bit-exactly; this module never changes a model)."""

from __future__ import annotations

from typing import Any

from . import espnn
from .cost import (
    DEFAULT_GEN,
    run,
)
from .espnn import Layer
from .memory import FIRMWARE, INTERNAL_ARENA_BUDGET, Layout


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
