"""Read TFLite flatbuffers with TensorFlow's own generated schema: ops, tensors and constant data.

Used by ``inspect``, the weight importer and the quantization tuner. The schema module ships inside the
``tensorflow`` and ``tflite-micro`` wheels; we take whichever is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError

# Where the generated schema lives: tflite-micro's own copy first (no TensorFlow import, ~10 s faster).
_SCHEMA_MODULES = ("tflite_micro.tensorflow.lite.micro.python.schema_py_generated",
                   "tflite_micro.tensorflow.lite.python.schema_py_generated",
                   "tensorflow.lite.python.schema_py_generated")


def schema() -> Any:
    import importlib

    for name in _SCHEMA_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise UserError("reading .tflite files needs the conversion extras: pip install 'yamflash[convert]'")


_NP_TYPES = {
    "FLOAT32": np.float32,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FLOAT16": np.float16,
    "BOOL": np.bool_,
}


@dataclass
class Op:
    index: int
    name: str  # builtin op name, e.g. CONV_2D, or the custom code
    inputs: list[int]
    outputs: list[int]
    options: Any


class FlatModel:
    """A parsed .tflite model (object API), with helpers to read tensors and follow the graph."""

    def __init__(self, data: bytes, source: str = "<bytes>"):
        s = schema()
        self.s = s
        self.source = source
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise UserError(f"{source} is not a TFLite model (no TFL3 identifier); pass a .tflite file.")
        try:
            self.model = s.ModelT.InitFromObj(s.Model.GetRootAsModel(data, 0))
        except Exception:
            raise UserError(f"{source} is a damaged or truncated TFLite model; convert or download it again.") from None
        if not self.model.subgraphs:
            raise UserError(f"{source} has no subgraph; it is not a usable model.")
        self.graph = self.model.subgraphs[0]
        self._op_names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
        self._type_names = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
        self.ops = [self._op(i, o) for i, o in enumerate(self.graph.operators or [])]
        self.producer = {t: op for op in self.ops for t in op.outputs}
        # Truncated files parse but point past their end; touching every buffer catches that.
        for t in range(len(self.graph.tensors or [])):
            self.tensor_bytes(t)

    @classmethod
    def load(cls, path: str | Path) -> FlatModel:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read model {path}: {exc.strerror}; check the path.") from None
        return cls(data, str(path))

    def _op(self, i: int, o: Any) -> Op:
        code = self.model.operatorCodes[o.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = self._op_names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            name = "CUSTOM:" + (code.customCode or b"?").decode(errors="replace")
        return Op(i, name, [int(x) for x in (o.inputs if o.inputs is not None else [])],
                  [int(x) for x in (o.outputs if o.outputs is not None else [])], o.builtinOptions)

    def tensor(self, i: int) -> Any:
        return self.graph.tensors[i]

    def tensor_name(self, i: int) -> str:
        n = self.tensor(i).name
        return n.decode(errors="replace") if isinstance(n, bytes) else str(n)

    def tensor_type(self, i: int) -> str:
        return self._type_names.get(self.tensor(i).type, str(self.tensor(i).type))

    def tensor_shape(self, i: int) -> list[int]:
        shp = self.tensor(i).shape
        return [] if shp is None else [int(x) for x in shp]

    def tensor_bytes(self, i: int) -> bytes | None:
        t = self.tensor(i)
        buf = self.model.buffers[t.buffer] if t.buffer < len(self.model.buffers or []) else None
        if buf is None or buf.data is None or len(buf.data) == 0:
            return None
        data = bytes(np.asarray(buf.data, dtype=np.uint8))
        itemsize = np.dtype(_NP_TYPES.get(self.tensor_type(i), np.uint8)).itemsize
        want = int(np.prod(self.tensor_shape(i) or [1])) * itemsize
        if self.tensor_type(i) in _NP_TYPES and len(data) != want:
            raise UserError(f"{self.source} is damaged: tensor {self.tensor_name(i)} holds {len(data)} bytes, "
                            f"its shape needs {want}; download or convert it again.")
        return data

    def quantization(self, i: int) -> tuple[np.ndarray, np.ndarray, int] | None:
        """(scales, zero points, quantized dimension) or None for a float tensor."""
        q = self.tensor(i).quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            return None
        return (np.asarray(q.scale, np.float32), np.asarray(q.zeroPoint, np.int64), int(q.quantizedDimension))

    def constant(self, i: int) -> np.ndarray | None:
        """A constant tensor as float32, dequantized; follows a DEQUANTIZE op back to its input."""
        op = self.producer.get(i)
        if op is not None:
            return self.constant(op.inputs[0]) if op.name == "DEQUANTIZE" else None
        data = self.tensor_bytes(i)
        if data is None:
            return None
        typ = self.tensor_type(i)
        arr = np.frombuffer(data, dtype=_NP_TYPES[typ]).reshape(self.tensor_shape(i))
        q = self.quantization(i)
        if q is None or typ in ("FLOAT32", "FLOAT16"):
            return arr.astype(np.float32)
        scales, zps, dim = q
        shape = [1] * arr.ndim
        if len(scales) > 1:
            shape[dim] = len(scales)
        centred = arr.astype(np.float32) - zps.reshape(shape).astype(np.float32)
        return (centred * scales.reshape(shape)).astype(np.float32)

    def io(self) -> tuple[list[int], list[int]]:
        return [int(x) for x in self.graph.inputs], [int(x) for x in self.graph.outputs]

    def op_names(self) -> list[str]:
        return [op.name for op in self.ops]

    def fused_activation(self, op: Op) -> str:
        act = getattr(op.options, "fusedActivationFunction", 0)
        names = {v: k for k, v in vars(self.s.ActivationFunctionType).items() if not k.startswith("_")}
        return names.get(act, str(act))


BUFFER_ALIGN = 16  # what TensorFlow's converter gives constant buffers; SIMD loads of filters rely on it


class _AlignedBuffer:
    """Packs one Buffer like the generated ``BufferT.Pack`` but with its data vector aligned to BUFFER_ALIGN.

    The generated object API writes uint8 vectors with 1-byte alignment, so after a round trip filter data
    landed wherever the 4-byte length prefix left it (offsets 12 mod 16 in model.tflite)."""

    def __init__(self, buf: Any, schema: Any):
        self.buf, self.s = buf, schema

    def Pack(self, builder: Any) -> int:  # noqa: N802 - the generated API's method name
        data = self.buf.data
        if data is None or len(data) == 0:
            return int(self.buf.Pack(builder))
        payload = np.asarray(data, np.uint8).tobytes()
        builder.StartVector(1, len(payload), BUFFER_ALIGN)
        builder.head -= len(payload)
        builder.Bytes[builder.head:builder.head + len(payload)] = payload
        vec = builder.EndVector()
        self.s.BufferStart(builder)
        self.s.BufferAddData(builder, vec)
        self.s.BufferAddOffset(builder, self.buf.offset)
        self.s.BufferAddSize(builder, self.buf.size)
        return int(self.s.BufferEnd(builder))


def pack_modelt(model: Any, schema: Any) -> bytes:
    """``pack_model`` for a bare object-API ``ModelT`` (graph rewrites hold one) and its schema module."""
    import flatbuffers

    saved = model.buffers
    model.buffers = [_AlignedBuffer(b, schema) for b in saved]
    try:
        b = flatbuffers.Builder(sum(len(x.data) for x in saved if x.data is not None) + 65536)
        b.Finish(model.Pack(b), file_identifier=b"TFL3")
    finally:
        model.buffers = saved
    return bytes(b.Output())
