"""Graph rewrites of a full-INT8 model that change no output bit but change what ESP-NN does on the ESP32-S3.

Why: esp-tflite-micro's 1x1 convolution asks the arena for a scratch buffer as large as its filter (1 MiB for
YAMNet's 1024->1024 layer), and ESP-NN's 1x1 kernel streams the whole filter once per leftover position when a
layer has fewer than 8 (YAMNet's last layers have 3x2 = 6), so the filter is read from PSRAM six times per
Invoke (chip/espnn.py, chip/estimate.py). Two rewrites remove both costs without touching any arithmetic:

- :func:`split_pointwise`: a 1x1 CONV_2D whose ESP-NN scratch exceeds a budget becomes n CONV_2Ds over the
  same input, each with a contiguous slice of the output channels (filter rows, bias, per-channel scales and
  zero points sliced alike; output scale and zero point copied), joined by a CONCATENATION on the channel axis
  whose output keeps the original tensor's scale and zero point. Each output channel of a convolution depends
  only on the input, its own filter row, bias and per-channel quantization, and a concatenation of int8 tensors
  with the output's own scale and zero point is a copy (TFLite Micro's concatenation.cc requantizes nothing
  then), so every output byte is the one the unsplit convolution writes.
- :func:`pad_positions`: a 1x1 stride-1 CONV_2D over P < 64 positions with P % 8 != 0 becomes RESHAPE to
  1 x P, PAD (TFLite Micro pads int8 with the output zero point) to a multiple of 8 positions, the convolution,
  SLICE of the P real positions and RESHAPE back. Positions of a 1x1 convolution are independent, so the real
  ones are computed exactly as before; ESP-NN then runs its 8-position loop, one filter pass per 8 positions.

Bit-exactness is proved on real audio in TFLite Micro (reference kernels and esp-nn's C kernels):
``tests/test_rewrite.py``; ``target/layout.py`` checks it again on the patches of every conversion.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UserError
from ..model.tflite_fb import FlatModel
from . import scratch as espnn_scratch

POSITIONS = 8  # ESP-NN's 1x1 kernel (esp_nn_conv_s8_mult8_1x1_esp32s3.S) handles 8 positions per filter pass
MAX_CONCAT = 10  # TFLite Micro's concatenation.cc kMaxInputNum: more pieces are joined in a tree of concatenations


@dataclass
class Applied:
    """What a rewrite did, for model.json."""

    name: str
    ops: list[dict[str, Any]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {"rewrite": self.name, "ops": self.ops}


class _Graph:
    """A ModelT being edited: new tensors, buffers and op codes appended; operators rebuilt in order."""

    def __init__(self, tflite: bytes) -> None:
        self.fm = FlatModel(tflite)
        self.s = self.fm.s
        self.m = self.fm.model
        self.g = self.m.subgraphs[0]
        if len(self.m.subgraphs) != 1:
            raise UserError("graph rewrites need a model with one subgraph.")

    def opcode(self, name: str) -> int:
        code = getattr(self.s.BuiltinOperator, name)
        for i, c in enumerate(self.m.operatorCodes):
            if max(c.builtinCode, c.deprecatedBuiltinCode) == code:
                return i
        c = self.s.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
        self.m.operatorCodes.append(c)
        return len(self.m.operatorCodes) - 1

    def op_name(self, op: Any) -> str:
        c = self.m.operatorCodes[op.opcodeIndex]
        code = max(c.builtinCode, c.deprecatedBuiltinCode)
        return next(k for k, v in vars(self.s.BuiltinOperator).items() if v == code and not k.startswith("_"))

    def buffer(self, data: bytes | None) -> int:
        b = self.s.BufferT()
        b.data = np.frombuffer(data, np.uint8).copy() if data else None
        self.m.buffers.append(b)
        return len(self.m.buffers) - 1

    def tensor(self, name: str, shape: list[int], like: int, quant: Any = None, data: bytes | None = None,
               dtype: int | None = None) -> int:
        """A new tensor named ``name`` of ``shape``; type and quantization copied from tensor ``like`` unless given."""
        src = self.g.tensors[like]
        t = self.s.TensorT()
        t.shape = np.array(shape, np.int32)
        t.type = src.type if dtype is None else dtype
        t.name = name.encode()
        t.quantization = copy.deepcopy(src.quantization) if quant is None else quant
        t.buffer = self.buffer(data)
        self.g.tensors.append(t)
        return len(self.g.tensors) - 1

    def const_i32(self, name: str, values: list[int] | np.ndarray) -> int:
        arr = np.asarray(values, np.int32)
        t = self.s.TensorT()
        t.shape = np.array(arr.shape, np.int32)
        t.type = self.s.TensorType.INT32
        t.name = name.encode()
        t.buffer = self.buffer(arr.astype("<i4").tobytes())
        self.g.tensors.append(t)
        return len(self.g.tensors) - 1

    def operator(self, name: str, inputs: list[int], outputs: list[int], options_type: int = 0,
                 options: Any = None) -> Any:
        op = self.s.OperatorT()
        op.opcodeIndex = self.opcode(name)
        op.inputs = np.array(inputs, np.int32)
        op.outputs = np.array(outputs, np.int32)
        op.builtinOptionsType, op.builtinOptions = options_type, options
        return op

    def reshape(self, src: int, dst: int, shape: list[int]) -> Any:
        o = self.s.ReshapeOptionsT()
        o.newShape = list(shape)
        return self.operator("RESHAPE", [src, self.const_i32(f"{self.name(dst)}/shape", shape)], [dst],
                             self.s.BuiltinOptions.ReshapeOptions, o)

    def concat_tree(self, parts: list[int], y: int, tag: str) -> list[Any]:
        """CONCATENATIONs on the last axis joining ``parts`` into ``y``, at most MAX_CONCAT inputs each; every
        intermediate keeps y's scale and zero point, so each level is a copy."""
        axis = len(self.shape(y)) - 1
        ops = []
        level = 0
        while True:
            groups = [parts[i:i + MAX_CONCAT] for i in range(0, len(parts), MAX_CONCAT)]
            outs = []
            for gi, grp in enumerate(groups):
                if len(groups) == 1:
                    out = y
                else:
                    ch = sum(self.shape(t)[-1] for t in grp)
                    out = self.tensor(f"{tag}/cat{level}_{gi}", [*self.shape(y)[:-1], ch], y)
                co = self.s.ConcatenationOptionsT()
                co.axis, co.fusedActivationFunction = axis, self.s.ActivationFunctionType.NONE
                ops.append(self.operator("CONCATENATION", grp, [out], self.s.BuiltinOptions.ConcatenationOptions, co))
                outs.append(out)
            if len(groups) == 1:
                return ops
            parts, level = outs, level + 1

    def name(self, t: int) -> str:
        n = self.g.tensors[t].name
        return n.decode(errors="replace") if isinstance(n, bytes) else str(n)

    def shape(self, t: int) -> list[int]:
        return [int(x) for x in self.g.tensors[t].shape]

    def data(self, t: int) -> bytes:
        buf = self.m.buffers[self.g.tensors[t].buffer]
        return bytes(np.asarray(buf.data, np.uint8)) if buf.data is not None else b""

    def drop_data(self, t: int) -> None:
        """Empty a constant that no op reads any more (its slices replace it): its buffer and its per-channel
        quantization arrays (12 bytes a channel) would otherwise stay in the file; :meth:`compact` drops the
        tensor."""
        b = self.g.tensors[t].buffer
        users = sum(1 for tt in self.g.tensors if tt.buffer == b)
        if users == 1:
            self.m.buffers[b].data = None
            self.g.tensors[t].quantization = None

    def compact(self) -> None:
        """Drop tensors no op, graph input or output refers to, renumbering the rest. A constant whose slices
        replaced it must go: with its data emptied TFLite Micro would take it for an activation and plan arena
        space for it (3.3 MB for YAMNet's split filters)."""
        g = self.g
        used = {int(i) for i in g.inputs} | {int(i) for i in g.outputs}
        for op in g.operators:
            used |= {int(i) for i in op.inputs if i >= 0} | {int(i) for i in op.outputs}
            if op.intermediates is not None:
                used |= {int(i) for i in op.intermediates}
        keep = sorted(used)
        new = {old: k for k, old in enumerate(keep)}

        def remap(arr: Any) -> Any:
            return None if arr is None else np.array([new[int(i)] if i >= 0 else -1 for i in arr], np.int32)

        g.tensors = [g.tensors[i] for i in keep]
        g.inputs, g.outputs = remap(g.inputs), remap(g.outputs)
        for op in g.operators:
            op.inputs, op.outputs, op.intermediates = remap(op.inputs), remap(op.outputs), remap(op.intermediates)
        for sig in self.m.signatureDefs or []:
            for t in (sig.inputs or []) + (sig.outputs or []):
                t.tensorIndex = new[int(t.tensorIndex)]

    def pack(self) -> bytes:
        from ..model.tflite_fb import pack_modelt, schema  # constant buffers 16-byte aligned, as TF's converter

        self.compact()
        return pack_modelt(self.m, schema())

    def is_pointwise(self, op: Any) -> bool:
        if self.op_name(op) != "CONV_2D" or len(op.inputs) < 2:
            return False
        w = self.shape(int(op.inputs[1]))
        o = op.builtinOptions
        return (len(w) == 4 and w[1] == 1 and w[2] == 1 and (o.strideH, o.strideW) == (1, 1)
                and (o.dilationHFactor, o.dilationWFactor) == (1, 1)
                and self.g.tensors[int(op.inputs[0])].type == self.s.TensorType.INT8)


def pointwise_scratch(inp: list[int], out_ch: int) -> int:
    """esp-nn 1.2.3's S3 scratch request for a 1x1 stride-1 conv of NHWC input ``inp`` (chip/scratch.py)."""
    _, h, w, c = inp
    return espnn_scratch.conv_s3(w, h, c, 1, 1, w, h, out_ch, 1, 1, 0, 0)


def pieces_for(inp: list[int], out_ch: int, max_scratch: int) -> int:
    """Fewest equal pieces (a divisor of out_ch, pieces of >= 8 channels) whose scratch fits max_scratch."""
    for n in range(1, out_ch + 1):
        if out_ch % n or (n > 1 and out_ch // n < 8):
            continue
        if pointwise_scratch(inp, out_ch // n) <= max_scratch:
            return n
    return max(n for n in range(1, out_ch + 1) if out_ch % n == 0 and out_ch // n >= 8)


def split_pointwise(tflite: bytes, max_scratch: int) -> tuple[bytes, Applied]:
    """Split every int8 1x1 CONV_2D whose ESP-NN scratch exceeds ``max_scratch`` bytes along its output channels."""
    gr = _Graph(tflite)
    applied = Applied(f"split 1x1 conv output channels (ESP-NN scratch <= {max_scratch:,} B)")
    new_ops = []
    for idx, op in enumerate(gr.g.operators):
        if not gr.is_pointwise(op):
            new_ops.append(op)
            continue
        x, w, b = int(op.inputs[0]), int(op.inputs[1]), int(op.inputs[2]) if len(op.inputs) > 2 else -1
        y = int(op.outputs[0])
        inp, wshape = gr.shape(x), gr.shape(w)
        out_ch = wshape[0]
        n = pieces_for(inp, out_ch, max_scratch)
        if n == 1:
            new_ops.append(op)
            continue
        wq = gr.g.tensors[w].quantization
        if wq is None or wq.scale is None or len(wq.scale) not in (1, out_ch) or (len(wq.scale) > 1
                                                                                 and wq.quantizedDimension != 0):
            new_ops.append(op)  # not per-output-channel int8 weights: leave it alone
            continue
        k = out_ch // n
        wdata = np.frombuffer(gr.data(w), np.int8).reshape(wshape)
        bdata = np.frombuffer(gr.data(b), np.int32) if b >= 0 else None
        parts = []
        for j in range(n):
            sl = slice(j * k, (j + 1) * k)

            def qslice(q: Any, sl: slice = sl) -> Any:
                q2 = copy.deepcopy(q)
                if q2 is not None and q2.scale is not None and len(q2.scale) > 1:
                    q2.scale = np.asarray(q2.scale)[sl].copy()
                    q2.zeroPoint = np.asarray(q2.zeroPoint)[sl].copy()
                return q2

            tag = f"yf_split{idx}/{j}"  # short names: 300 pieces with TensorFlow's long names would add ~0.2 MB
            wj = gr.tensor(f"{tag}/filter", [k, *wshape[1:]], w, qslice(wq), wdata[sl].tobytes())
            ins = [x, wj]
            if bdata is not None:
                ins.append(gr.tensor(f"{tag}/bias", [k], b, qslice(gr.g.tensors[b].quantization),
                                     bdata[sl].astype("<i4").tobytes()))
            yj = gr.tensor(f"{tag}/out", [*gr.shape(y)[:-1], k], y)
            part = copy.deepcopy(op)
            part.inputs, part.outputs = np.array(ins, np.int32), np.array([yj], np.int32)
            new_ops.append(part)
            parts.append(yj)
        new_ops += gr.concat_tree(parts, y, f"yf_split{idx}")
        gr.drop_data(w)
        if b >= 0:
            gr.drop_data(b)
        applied.ops.append({"op": idx, "tensor": gr.name(y), "input": inp, "out_channels": out_ch, "pieces": n,
                            "scratch_before": pointwise_scratch(inp, out_ch),
                            "scratch_after": pointwise_scratch(inp, k)})
    gr.g.operators = new_ops
    return gr.pack(), applied


def pad_positions(tflite: bytes, max_positions: int = 64) -> tuple[bytes, Applied]:
    """Run every int8 1x1 stride-1 CONV_2D over P <= max_positions positions, P % 8 != 0, on P rounded up to 8."""
    gr = _Graph(tflite)
    s = gr.s
    applied = Applied(f"pad 1x1 conv positions to a multiple of {POSITIONS}")
    new_ops = []
    for idx, op in enumerate(gr.g.operators):
        x, y = int(op.inputs[0]), int(op.outputs[0])
        if not gr.is_pointwise(op) or len(gr.shape(x)) != 4:
            new_ops.append(op)
            continue
        _, h, w, c = gr.shape(x)
        k = gr.shape(y)[-1]
        pos = h * w
        if pos % POSITIONS == 0 or pos > max_positions:
            new_ops.append(op)
            continue
        p8 = -(-pos // POSITIONS) * POSITIONS
        base = f"yf_pad{idx}"
        flat = gr.tensor(f"{base}/in_rows", [1, 1, pos, c], x)
        padded = gr.tensor(f"{base}/in_padded", [1, 1, p8, c], x)
        conv_out = gr.tensor(f"{base}/padded", [1, 1, p8, k], y)
        cut = gr.tensor(f"{base}/rows", [1, 1, pos, k], y)
        new_ops.append(gr.reshape(x, flat, [1, 1, pos, c]))
        pads = gr.const_i32(f"{base}/paddings", [[0, 0], [0, 0], [0, p8 - pos], [0, 0]])
        new_ops.append(gr.operator("PAD", [flat, pads], [padded], s.BuiltinOptions.PadOptions, s.PadOptionsT()))
        conv = copy.deepcopy(op)
        conv.inputs = np.array([padded, *[int(i) for i in op.inputs[1:]]], np.int32)
        conv.outputs = np.array([conv_out], np.int32)
        new_ops.append(conv)
        begin = gr.const_i32(f"{base}/begin", [0, 0, 0, 0])
        size = gr.const_i32(f"{base}/size", [1, 1, pos, k])
        new_ops.append(gr.operator("SLICE", [conv_out, begin, size], [cut], s.BuiltinOptions.SliceOptions,
                                   s.SliceOptionsT()))
        new_ops.append(gr.reshape(cut, y, gr.shape(y)))
        applied.ops.append({"op": idx, "tensor": gr.name(y), "positions": pos, "padded_to": p8})
    gr.g.operators = new_ops
    return gr.pack(), applied


def stem_as_depthwise(tflite: bytes) -> tuple[bytes, Applied]:
    """Write each int8 CONV_2D over a 1-channel input as DEPTHWISE_CONV_2D with depth multiplier = its output
    channels (what TensorFlow's converter does for person detection's first layer).

    Same sums: with one input channel, output channel k of the convolution is the input times filter k, which
    is what a depthwise convolution with multiplier K computes for its channel k; the filter [K, h, w, 1]
    becomes [1, h, w, K] (per-channel scales and zero points now on dimension 3), bias, output quantization,
    padding, strides, dilation and fused activation are kept. ESP-NN then runs its int16 depth-multiplier kernel
    instead of a general convolution that leaves 15 of its 16 vector lanes idle."""
    gr = _Graph(tflite)
    s = gr.s
    applied = Applied("first conv (1 input channel) as depthwise")
    for idx, op in enumerate(gr.g.operators):
        if gr.op_name(op) != "CONV_2D" or len(op.inputs) < 2:
            continue
        x, w = int(op.inputs[0]), int(op.inputs[1])
        wshape = gr.shape(w)
        wq = gr.g.tensors[w].quantization
        if (len(wshape) != 4 or wshape[3] != 1 or gr.shape(x)[-1] != 1 or wq is None or wq.scale is None
                or gr.g.tensors[x].type != s.TensorType.INT8 or (wshape[1], wshape[2]) == (1, 1)):
            continue
        k = wshape[0]
        users = sum(1 for o in gr.g.operators for i in o.inputs if int(i) == w)
        if users != 1:
            continue
        data = np.frombuffer(gr.data(w), np.int8).reshape(wshape)
        new_w = np.ascontiguousarray(data.transpose(3, 1, 2, 0))  # [1, h, w, K]
        gr.m.buffers[gr.g.tensors[w].buffer].data = np.frombuffer(new_w.tobytes(), np.uint8).copy()
        gr.g.tensors[w].shape = np.array(new_w.shape, np.int32)
        if len(wq.scale) > 1:
            wq.quantizedDimension = 3
        c = op.builtinOptions
        d = s.DepthwiseConv2DOptionsT()
        d.padding, d.strideW, d.strideH, d.depthMultiplier = c.padding, c.strideW, c.strideH, k
        d.fusedActivationFunction, d.dilationWFactor, d.dilationHFactor = (c.fusedActivationFunction,
                                                                            c.dilationWFactor, c.dilationHFactor)
        op.opcodeIndex = gr.opcode("DEPTHWISE_CONV_2D")
        op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.DepthwiseConv2DOptions, d
        applied.ops.append({"op": idx, "tensor": gr.name(int(op.outputs[0])), "filter": wshape,
                            "depth_multiplier": k})
    return gr.pack(), applied


# The rewrite sets target/layout.py chooses among (applied in this order: pad first, so the split pieces run on
# the padded positions). Each is bit-exact by construction and checked on real audio.
def apply(tflite: bytes, pad: bool, max_scratch: int | None, stem: bool = False) -> tuple[bytes, list[dict[str, Any]]]:
    """The model with the chosen rewrites, and what each did."""
    done: list[dict[str, Any]] = []
    if stem:
        tflite, a = stem_as_depthwise(tflite)
        if a.ops:
            done.append(a.record())
    if pad:
        tflite, a = pad_positions(tflite)
        if a.ops:
            done.append(a.record())
    if max_scratch is not None:
        tflite, a = split_pointwise(tflite, max_scratch)
        if a.ops:
            done.append(a.record())
    return tflite, done
