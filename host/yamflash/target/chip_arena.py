"""The chip's tensor arena, measured on the host: the firmware's own yf_inference.cpp on TensorFlow Lite Micro
built from esp-tflite-micro v1.3.7 with its ESP-NN kernels.

Why: the host's ``tflite-micro`` package runs reference kernels, which ask the arena for no scratch buffers;
on the ESP32-S3, esp-tflite-micro's ESP-NN kernels ask for what ``esp_nn_get_*_scratch_size_esp32s3``
returns (a whole 1 MiB filter copy for YAMNet's 1024->1024 1x1 conv). So the chip needs ~1.16 MB where the
host measures ~0.25 MB. Here the real kernel glue requests the real S3 sizes:

- TFLite Micro: the sources esp-tflite-micro's CMakeLists.txt compiles, with tensorflow/lite/micro/kernels/
  esp_nn/<op>.cc replacing the reference kernels of the same name, ``-DESP_NN`` (signal/ and the
  micro frontend, which nothing here links, are left out).
- ESP-NN: its portable C (the ``c_srcs`` of esp-nn's CMakeLists.txt) for the arithmetic, and the ESP32-S3
  C files that define the scratch-size functions, compiled on the host; the Xtensa assembly they refer to
  is replaced by aborting stubs (chip_host/esp_nn_s3_stubs.c). chip_host/include/esp_nn.h maps the names.
- ESP-IDF: chip_host/include/esp_heap_caps.h, esp_log.h and esp_timer.h; the heap emulates the board
  profile's internal RAM and PSRAM, so AllocArena's placement and its 4x PSRAM retry run as on the chip.

Nothing is copied from ../shared/sdk: everything compiles from there, into
``~/.cache/yamflash/tflm-espnn-<hash of sources, flags and chip_host>/`` (a few minutes once on 2 cores).

Host truth is not chip truth: this is a 64-bit build, so TFLite Micro's persistent structures (pointers in
tensors, nodes and op data) are larger than on the 32-bit chip and the figure is an upper bound of the
chip's (``HOST_POINTER_NOTE``); kernel arithmetic is esp-nn's portable C, not the S3 assembly.
"""

from __future__ import annotations

import contextlib
import ctypes as C
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from .chip_build import (
    ESPNN,
    HOST_POINTER_NOTE,
    MAX_SCRATCH,
    MEASURE_ARENA,
    MEASURE_PSRAM,
    build_app,
    measure_32bit,  # noqa: F401  (callers measure through this module: the 32-bit figure beside ours)
    sdk_dir,
)

# ---- running it --------------------------------------------------------------------------------------------


class InferInfo(C.Structure):  # yf_inference.h yf_infer_info_t (x86-64/aarch64 ABI)
    _fields_ = [("arena_size", C.c_size_t), ("arena_used", C.c_size_t), ("arena_where", C.c_char_p),
                ("in_scale", C.c_float), ("out_scale", C.c_float), ("in_zp", C.c_int32), ("out_zp", C.c_int32),
                ("in_bytes", C.c_size_t), ("out_bytes", C.c_size_t)]


class Scratch(C.Structure):  # chip_host.c yfh_scratch_t
    _fields_ = [(n, C.c_int32) for n in ("kind", "in_w", "in_h", "in_c", "f_w", "f_h", "out_w", "out_h", "out_c",
                                         "stride_w", "stride_h", "pad_w", "pad_h", "ch_mult", "bytes")]


class DataDims(C.Structure):  # esp_nn_defs.h data_dims_t
    _fields_ = [("width", C.c_int32), ("height", C.c_int32), ("channels", C.c_int32), ("extra", C.c_int32)]


class ConvParams(C.Structure):  # esp_nn_defs.h conv_params_t
    _fields_ = [(n, C.c_int32) for n in ("in_offset", "out_offset", "stride_w", "stride_h", "pad_w", "pad_h",
                                         "dil_w", "dil_h", "act_min", "act_max")]


class DwConvParams(C.Structure):  # esp_nn_defs.h dw_conv_params_t
    _fields_ = [(n, C.c_int32) for n in ("in_offset", "out_offset", "ch_mult", "stride_w", "stride_h", "pad_w",
                                         "pad_h", "dil_w", "dil_h", "act_min", "act_max")]


KINDS = ("conv", "depthwise", "softmax")
MALLOC_CAP_8BIT, MALLOC_CAP_SPIRAM = 1 << 2, 1 << 10


class ChipInterpreter:
    """One instance of yf_inference.cpp (its globals are one interpreter): a private copy of the library is
    loaded per instance, with the emulated heap set to ``internal`` and ``psram`` bytes and ``psram_taken``
    of PSRAM already in use (the model, when SPIFFS storage copies it there)."""

    def __init__(self, lib: Path, model: bytes, internal: int, psram: int, psram_taken: int = 0,
                 arena_bytes: int | None = None, arena_internal: bool = False):
        fd, copy = tempfile.mkstemp(suffix=".so", prefix="yf_chip_")
        os.close(fd)
        shutil.copyfile(lib, copy)
        try:
            self.dll = C.CDLL(copy, mode=os.RTLD_LOCAL)
        finally:
            os.unlink(copy)  # the mapping stays; nothing is left on disk
        d = self.dll
        d.yf_infer_init.argtypes = [C.c_void_p, C.c_char_p, C.c_size_t]
        d.yf_infer_info.argtypes = [C.POINTER(InferInfo)]
        d.yf_infer_input.restype = C.POINTER(C.c_int8)
        d.yf_infer_output.restype = C.POINTER(C.c_int8)
        d.yf_infer_invoke.argtypes = [C.POINTER(C.c_uint32)]
        d.yfh_heap_config.argtypes = [C.c_size_t, C.c_size_t]
        d.yfh_heap_used.restype = C.c_size_t
        d.yfh_heap_peak.restype = C.c_size_t
        d.yfh_heap_failed.restype = C.c_size_t
        d.yfh_heap_failed.argtypes = [C.POINTER(C.c_int)]
        d.yfh_scratch_get.argtypes = [C.c_int, C.POINTER(Scratch)]
        d.yfh_log_read.restype = C.c_char_p
        d.heap_caps_malloc.restype = C.c_void_p
        d.heap_caps_malloc.argtypes = [C.c_size_t, C.c_uint32]
        d.yfh_heap_config(internal, psram)
        if arena_bytes is not None:  # a variable_arena() build
            C.c_size_t.in_dll(d, "yfh_arena_bytes").value = arena_bytes
            C.c_int.in_dll(d, "yfh_arena_internal").value = int(arena_internal)
        if psram_taken and not d.heap_caps_malloc(psram_taken, MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT):
            raise UserError(f"the model ({psram_taken:,} bytes) does not fit the board's PSRAM ({psram:,} bytes).")
        # TFLite Micro keeps pointers into the model: the buffer lives as long as this object, 16-aligned.
        self._model = np.frombuffer(model, np.uint8).copy()
        self.rc: int | None = None
        self.err = ""

    def init(self) -> int:
        """yf_infer_init: 0, -1 (err set) or -2 (ran with the 4x PSRAM arena); TFLite Micro's own messages
        (``Requested N, available M``) go to stderr, and land in ``self.tflm_log``."""
        buf = C.create_string_buffer(256)
        with _capture_fd2() as cap:
            self.rc = int(self.dll.yf_infer_init(self._model.ctypes.data, buf, len(buf)))
        self.tflm_log = cap.text
        self.err = buf.value.decode(errors="replace")
        return self.rc

    def info(self) -> dict[str, Any]:
        i = InferInfo()
        self.dll.yf_infer_info(C.byref(i))
        return {"size": int(i.arena_size), "used": int(i.arena_used),
                "where": (i.arena_where or b"").decode(), "in_bytes": int(i.in_bytes), "out_bytes": int(i.out_bytes)}

    def heap(self) -> dict[str, Any]:
        region = C.c_int(-1)
        failed = int(self.dll.yfh_heap_failed(C.byref(region)))
        where = ("internal", "psram")[region.value] if region.value >= 0 else None
        return {"internal_used": int(self.dll.yfh_heap_used(0)), "psram_used": int(self.dll.yfh_heap_used(1)),
                "internal_peak": int(self.dll.yfh_heap_peak(0)), "psram_peak": int(self.dll.yfh_heap_peak(1)),
                "failed": {"bytes": failed, "where": where} if where else None}

    def log(self) -> str:
        return (self.dll.yfh_log_read() or b"").decode(errors="replace")

    def scratch(self) -> list[dict[str, int | str]]:
        """Every scratch-size request the ESP-NN kernels made (Prepare), in order."""
        out = []
        n = int(self.dll.yfh_scratch_count())
        if n > MAX_SCRATCH:
            raise UserError(f"{n} scratch requests overflow chip_host.c's table of {MAX_SCRATCH}.")
        for k in range(n):
            s = Scratch()
            self.dll.yfh_scratch_get(k, C.byref(s))
            row: dict[str, int | str] = {f: int(getattr(s, f)) for f, _ in Scratch._fields_}
            row["kind"] = KINDS[int(s.kind)]
            out.append(row)
        return out

    def run_int8(self, patch: np.ndarray) -> np.ndarray:
        """One int8 input in, the raw int8 output out (yf_infer_input/invoke/output)."""
        inf = self.info()
        x = np.ascontiguousarray(np.asarray(patch, np.int8).reshape(-1))
        if x.size != inf["in_bytes"]:
            raise ValueError(f"input has {x.size} values, the model takes {inf['in_bytes']}")
        C.memmove(self.dll.yf_infer_input(), x.ctypes.data, x.size)
        us = C.c_uint32()
        if self.dll.yf_infer_invoke(C.byref(us)) != 0:
            raise UserError("Invoke failed in the chip build of TensorFlow Lite Micro.")
        return np.ctypeslib.as_array(self.dll.yf_infer_output(), (inf["out_bytes"],)).copy()

    # esp-nn's compiled S3 functions, called directly (the tests compare them with espnn_scratch.py).
    def conv_scratch_s3(self, r: dict[str, int]) -> int:
        f = self.dll.esp_nn_get_conv_scratch_size_esp32s3
        return int(f(C.byref(DataDims(r["in_w"], r["in_h"], r["in_c"], 1)), C.byref(DataDims(r["f_w"], r["f_h"],
                     r["in_c"], 0)), C.byref(DataDims(r["out_w"], r["out_h"], r["out_c"], 1)),
                     C.byref(ConvParams(0, 0, r["stride_w"], r["stride_h"], r["pad_w"], r["pad_h"], 0, 0, -128,
                                        127))))

    def depthwise_scratch_s3(self, r: dict[str, int]) -> int:
        f = self.dll.esp_nn_get_depthwise_conv_scratch_size_esp32s3
        return int(f(C.byref(DataDims(r["in_w"], r["in_h"], r["in_c"], 1)), C.byref(DataDims(r["f_w"], r["f_h"],
                     r["in_c"] * r["ch_mult"], 0)), C.byref(DataDims(r["out_w"], r["out_h"], r["out_c"], 1)),
                     C.byref(DwConvParams(0, 0, r["ch_mult"], r["stride_w"], r["stride_h"], r["pad_w"], r["pad_h"],
                                          0, 0, -128, 127))))

    def softmax_scratch_s3(self, width: int, height: int) -> int:
        return int(self.dll.esp_nn_get_softmax_scratch_size_esp32s3(C.c_int32(width), C.c_int32(height)))


class _Captured:
    text = ""


@contextlib.contextmanager
def _capture_fd2() -> Iterator[_Captured]:
    """TFLite Micro's DebugLog writes to fd 2: catch it into ``.text`` (and off the user's terminal)."""
    cap = _Captured()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            yield cap
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            cap.text = f.read().decode(errors="replace")


# ---- the figure model.json records ------------------------------------------------------------------------

INFERENCE_HEADERS = {"generated/yf_model_params.h.j2": "yf_model_params.h",
                     "generated/yf_op_resolver.h.j2": "yf_op_resolver.h"}


def write_headers(plan: Any, out: Path) -> Path:
    """The generated yf_model_params.h and yf_op_resolver.h of a gen Plan, into ``out``."""
    from . import gen

    out.mkdir(parents=True, exist_ok=True)
    for tpl, name in INFERENCE_HEADERS.items():
        (out / name).write_bytes(gen.render_one(plan, tpl))
    return out


VARIABLE_ARENA = """extern "C" {
extern size_t yfh_arena_bytes; /* chip_host.c: set by the host before yf_infer_init */
extern int yfh_arena_internal;
}
#define YF_ARENA_BYTES yfh_arena_bytes
#define YF_ARENA_INTERNAL yfh_arena_internal
"""


def variable_arena(headers: Path) -> Path:
    """Turn the generated YF_ARENA_BYTES / YF_ARENA_INTERNAL into variables the host sets before each
    yf_infer_init, so one build of yf_inference.cpp can try many arena sizes and placements (the test of the
    virtual board's allocation mirror, and the search for the smallest arena). yf_inference.cpp itself is
    untouched; only its copy of yf_model_params.h changes."""
    p = headers / "yf_model_params.h"
    text, n = re.subn(r"^#define YF_ARENA_BYTES \d+u\n(?:.*\n)*?#define YF_ARENA_INTERNAL [01]\n", VARIABLE_ARENA,
                      p.read_text(), count=1, flags=re.M)
    if n != 1:
        raise UserError(f"{p} has no YF_ARENA_BYTES ... YF_ARENA_INTERNAL block to replace.")
    p.write_text(text)
    return headers


def measuring_plan(manifest: dict[str, Any], model: bytes, work: Path) -> Any:
    """gen's plan for this model on the virtual-board profile, with the arena set to MEASURE_ARENA in PSRAM:
    the headers yf_inference.cpp is compiled against to find out what AllocateTensors uses."""
    from .. import manifest as mf
    from . import gen

    (work / "model.tflite").write_bytes(model)
    mf.write(work / "model.json", manifest)
    plan = gen.make_plan(work / "model.json", gen.GenConfig(profile="sim"))
    plan.arena_bytes, plan.arena_where = MEASURE_ARENA, "psram"
    return plan


def measure(manifest: dict[str, Any], model: bytes, log: Any = None) -> dict[str, Any] | None:
    """model.json's chip figures: ``arena_used_bytes`` of yf_inference.cpp on the ESP-NN build (arena in
    PSRAM, as large as it likes), and the scratch requests behind it. None where ../shared/sdk is absent."""
    from ..chip import scratch as espnn_scratch

    sdk = sdk_dir()
    if sdk is None:
        return None
    with tempfile.TemporaryDirectory() as td:
        plan = measuring_plan(manifest, model, Path(td))
        so, _ = build_app(write_headers(plan, Path(td) / "generated"), sdk, log)
    it = ChipInterpreter(so, model, internal=0, psram=MEASURE_PSRAM)
    if it.init() != 0:
        tflm = " / ".join(ln for ln in it.tflm_log.splitlines() if ln.strip())[-400:]
        raise UserError(f"TensorFlow Lite Micro with ESP-NN kernels cannot allocate this model: {it.err}; "
                        f"TensorFlow Lite Micro said: {tflm}")
    scratch = it.scratch()
    return {"chip_espnn": it.info()["used"], "largest_scratch": max((int(r["bytes"]) for r in scratch), default=0),
            "scratch_requests": len(scratch),
            "chip_measured_on": f"firmware yf_inference.cpp on esp-tflite-micro v1.3.7 with its ESP-NN kernels; "
                                f"ESP32-S3 scratch sizes of esp-nn {espnn_version(sdk)} (../shared/sdk; the firmware "
                                f"pins {espnn_scratch.ESPNN_PINNED}, not public); {HOST_POINTER_NOTE}"}


def espnn_version(sdk: Path) -> str:
    m = re.search(r'^version:\s*"?([^"\s]+)', (sdk / ESPNN / "idf_component.yml").read_text(), re.M)
    return m.group(1) if m else "of unknown version"
