"""Set the activation ranges of a converted full-INT8 YAMNet directly in its flatbuffer.

TensorFlow's converter only knows min/max calibration. The recipe picks its own range per activation
tensor; the most direct and exact way to impose them is to rewrite each tensor's scale and zero point
and then re-quantize every bias, whose int32 scale is input scale x per-channel weight scale. TFLite
Micro derives all requantization multipliers from these numbers at load time, so nothing else changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UserError
from ..model.tflite_fb import BUFFER_ALIGN, FlatModel, pack_modelt
from .simulate import N_CONV, N_TENSORS


def graph_tensors(fm: FlatModel) -> tuple[list[list[int]], list[Any]]:
    """Flatbuffer tensor ids per simulated tensor 0..29 (input and its RESHAPE share one range), and
    the weighted ops (27 convolutions then FULLY_CONNECTED) in graph order."""
    names = fm.op_names()
    weighted = [op for op in fm.ops if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    means = [op for op in fm.ops if op.name == "MEAN"]
    if len(weighted) != N_CONV + 1 or len(means) != 1 or names[0] != "RESHAPE":
        raise UserError(f"unexpected converted graph ({', '.join(names)}); cannot set its ranges. "
                        "Did the TensorFlow version change?")
    ins, _ = fm.io()
    ids: list[list[int]] = [[ins[0], fm.ops[0].outputs[0]]]
    ids += [[op.outputs[0]] for op in weighted[:-1]]
    ids += [[means[0].outputs[0]], [weighted[-1].outputs[0]]]
    assert len(ids) == N_TENSORS
    return ids, weighted


def _affine(lo: float, hi: float) -> tuple[float, int]:
    """int8 scale and zero point for [lo, hi], zero exactly representable (as fake quantization nudges)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max(hi - lo, 1e-8) / 255.0
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return scale, zp


def set_ranges(tflite: bytes, ranges: np.ndarray, biases: list[np.ndarray]) -> bytes:
    """Return the model with activation ranges ``ranges`` [30, 2] and biases re-quantized from float
    ``biases`` (one per weighted op, graph order) for the new input scales."""
    fm = FlatModel(tflite)
    ids, weighted = graph_tensors(fm)
    for t, tids in enumerate(ids):
        scale, zp = _affine(*ranges[t])
        for i in tids:
            q = fm.tensor(i).quantization
            q.scale, q.zeroPoint, q.min, q.max = [scale], [zp], None, None
    if len(biases) != len(weighted):
        raise ValueError(f"{len(biases)} biases for {len(weighted)} weighted ops")
    seen: set[int] = set()
    for op, bias in zip(weighted, biases, strict=True):
        sin = float(fm.tensor(op.inputs[0]).quantization.scale[0])
        wq = fm.quantization(op.inputs[1])
        if wq is None:
            raise UserError("the converted model has float weights; cannot set int8 ranges")
        sw = wq[0].astype(np.float64)
        bt = fm.tensor(op.inputs[2])
        if bt.buffer in seen:
            raise UserError("two biases share one buffer in the converted model; cannot re-quantize them")
        seen.add(bt.buffer)
        bscale = sin * (sw if len(sw) == len(bias) else np.full(len(bias), sw[0]))
        q32 = np.clip(np.round(bias.astype(np.float64) / bscale), -(2**31), 2**31 - 1).astype("<i4")
        bt.quantization.scale = [float(x) for x in bscale]
        bt.quantization.zeroPoint = [0] * len(bias)
        fm.model.buffers[bt.buffer].data = np.frombuffer(q32.tobytes(), np.uint8)
    return pack_model(fm)


__all__ = ["BUFFER_ALIGN", "buffer_data_offsets", "graph_tensors", "inline_buffers", "pack_model", "read_ranges",
           "set_ranges"]


def pack_model(fm: FlatModel) -> bytes:
    """Serialize a (modified) model with every constant buffer's data at a multiple of BUFFER_ALIGN bytes."""
    return pack_modelt(fm.model, fm.s)


def inline_buffers(tflite: bytes) -> bytes:
    """A model whose constant data sits after the flatbuffer (Buffer.offset/size, as ai-edge-quantizer writes
    it) rewritten with the data inside, which is all TFLite Micro reads: it silently takes such buffers as empty
    (all weights zero, every score 0.5). Models without such buffers come back unchanged."""
    fm = FlatModel(tflite)
    moved = 0
    for buf in fm.model.buffers:
        if buf.offset and buf.offset > 1:  # 1 is the converter's "no data" marker
            if buf.offset + buf.size > len(tflite):
                raise UserError("a constant buffer points past the end of the model file; the file is truncated")
            buf.data = np.frombuffer(tflite[buf.offset:buf.offset + buf.size], np.uint8)
            buf.offset, buf.size = 0, 0
            moved += 1
    return pack_model(fm) if moved else tflite


def buffer_data_offsets(tflite: bytes) -> dict[int, int]:
    """Byte offset of each non-empty buffer's data in the file (buffer index -> offset)."""
    s = FlatModel(tflite).s
    m = s.Model.GetRootAs(tflite, 0)
    out = {}
    for i in range(m.BuffersLength()):
        buf = m.Buffers(i)
        o = buf._tab.Offset(4)  # field 0 (data): vtable slot 4
        if o and buf.DataLength():
            out[i] = int(buf._tab.Vector(o))
    return out


def read_ranges(tflite: bytes) -> np.ndarray:
    """The [30, 2] activation ranges a model's scales and zero points stand for (for tests and reports)."""
    fm = FlatModel(tflite)
    ids, _ = graph_tensors(fm)
    out = np.zeros((N_TENSORS, 2))
    for t, tids in enumerate(ids):
        q = fm.quantization(tids[0])
        assert q is not None
        sc, zp = float(q[0][0]), int(q[1][0])
        out[t] = [(-128 - zp) * sc, (127 - zp) * sc]
    return out

