"""TensorFlow Lite Micro on the host (the ``tflite-micro`` package): the reference the board must match.

The board runs the same interpreter with ESP-NN kernels; on the host the reference kernels run. Arena
sizes measured here are for a 64-bit host; the chip's 32-bit pointers make its persistent area a little
smaller, so a host figure is a safe upper bound.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np

from ..errors import UserError


def _runtime() -> Any:
    try:
        from tflite_micro.python.tflite_micro import runtime  # type: ignore
    except ImportError:
        raise UserError("TFLite Micro is missing: pip install 'yamflash[convert]'") from None
    return runtime


@contextlib.contextmanager
def _quiet_stderr() -> Any:
    """TFLM's C++ side prints allocation failures to fd 2; keep them off the user's terminal."""
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class MicroModel:
    """An int8 model loaded into TFLM's interpreter with a given arena."""

    def __init__(self, model: bytes, arena_size: int | None = None):
        rt = _runtime()
        self.model = model
        self.arena_size = arena_size or max(4 * len(model), 2 << 20)
        try:
            with _quiet_stderr():
                self.interp = rt.Interpreter.from_bytes(model, arena_size=self.arena_size)
        except Exception as exc:
            raise UserError(f"TFLite Micro cannot load this model: {str(exc).splitlines()[0]}") from None
        self.inp = self.interp.get_input_details(0)
        self.out = self.interp.get_output_details(0)

    @property
    def input_quant(self) -> tuple[float, int]:
        q = self.inp["quantization_parameters"]
        return float(q["scales"][0]), int(q["zero_points"][0])

    @property
    def output_quant(self) -> tuple[float, int]:
        q = self.out["quantization_parameters"]
        return float(q["scales"][0]), int(q["zero_points"][0])

    def run_int8(self, patch_q: np.ndarray) -> np.ndarray:
        """One int8 patch [96, 64] (or the model's input shape) in, the raw int8 output out."""
        self.interp.set_input(np.asarray(patch_q, np.int8).reshape(self.inp["shape"]), 0)
        self.interp.invoke()
        return np.array(self.interp.get_output(0)).reshape(-1)

    def run(self, patches: np.ndarray, progress: Any = None) -> np.ndarray:
        """Float patches [n, 96, 64] in, dequantized scores [n, classes] out, through int8."""
        from ..frontend import dequantize, quantize

        si, zi = self.input_quant
        so, zo = self.output_quant
        outs = []
        for p in patches:
            outs.append(dequantize(self.run_int8(quantize(p, si, zi)), so, zo))
            if progress:
                progress()
        return np.stack(outs) if outs else np.zeros((0, int(self.out["shape"][-1])), np.float32)


def arena_bytes(model: bytes, hi: int = 4 << 20) -> int:
    """The smallest arena (16-byte granularity) with which TFLM allocates and invokes the model."""
    rt = _runtime()

    def fits(size: int) -> bool:
        try:
            with _quiet_stderr():
                it = rt.Interpreter.from_bytes(model, arena_size=size)
                it.invoke()
            return True
        except Exception:
            return False

    if not fits(hi):
        raise UserError(f"the model needs more than {hi} bytes of tensor arena; it cannot run on an ESP32-S3.")
    lo = 0
    while hi - lo > 16:
        mid = (lo + hi) // 2 // 16 * 16
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return hi
