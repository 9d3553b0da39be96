"""yf_core, the firmware's portable C core, built for this host and called through ctypes.

The virtual board and the tests run the very C the chip runs. The library is compiled on first use into
``~/.cache/yamflash/native/<hash of sources and flags>/libyf_core.so`` (cachedir.py), so editing a source
rebuilds it and concurrent processes never load a half-written file.
"""

from __future__ import annotations

import ctypes as C
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ...cachedir import cache_root
from ...errors import UserError
from ...protocol_spec import load as _load_spec

# The C core ships inside the package (yf_core/: a link to firmware/components/yf_core in a checkout, a copy in
# a wheel), so an installed yamflash builds the same C the chip runs; the library goes to the user's cache.
CORE_DIR = Path(str(resources.files("yamflash.target").joinpath("yf_core")))
BUILD_DIR = Path(os.environ.get("YAMFLASH_NATIVE_DIR") or cache_root() / "native")
CFLAGS = ["-std=c99", "-O2", "-fPIC", "-shared", "-Wall", "-Wextra"]

NUM_MEL = 64
FRAME_LEN = 400
FRAME_HOP = 160
PATCH_FRAMES = 96
PATCH_HOP = 48
# The protocol's numbers and tables come from the spec the C header is generated from (yamflash.protocol_spec).
SPEC = _load_spec()
MAX_LINE = SPEC.const("MAX_LINE")
PAYLOAD_MAX = SPEC.payload_max
DETECT_MAX_CLASSES = SPEC.const("MAX_CLASSES")

LINE_PROTO, LINE_LOG = 1, 2
PARSE_OK, PARSE_BAD, PARSE_UNKNOWN_CMD, PARSE_ARG = 0, 1, 2, 3
CMD_NAMES = ["", *SPEC.commands]  # yf_cmd_kind_t: YF_CMD_NONE, then the spec's order


def sources() -> list[Path]:
    return sorted((CORE_DIR / "src").glob("*.c")) + sorted((CORE_DIR / "include").glob("*.h"))


def library_path(extra_flags: tuple[str, ...] = ()) -> Path:
    """Where the library for the current sources and flags lives (built or not)."""
    h = hashlib.sha256()
    for p in sources():
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(" ".join(CFLAGS + list(extra_flags)).encode())
    return BUILD_DIR / h.hexdigest()[:16] / "libyf_core.so"


def build(extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile yf_core into a shared library unless the current sources are already built."""
    out = library_path(extra_flags)
    if out.exists():
        return out
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise UserError("no C compiler found to build yf_core for the host; install gcc (or set CC).")
    out.parent.mkdir(parents=True, exist_ok=True)
    srcs = [str(p) for p in sorted((CORE_DIR / "src").glob("*.c"))]
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    cmd = [cc, *CFLAGS, *extra_flags, "-I", str(CORE_DIR / "include"), *srcs, "-o", tmp, "-lm"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        os.unlink(tmp)
        raise UserError(f"building yf_core failed ({' '.join(cmd)}):\n{res.stderr.strip()}")
    os.replace(tmp, out)  # atomic: a concurrent reader sees the old state or the whole library
    return out


# ---------------------------------------------------------------- struct mirrors (x86-64/aarch64 ABI)


class FrontendConfig(C.Structure):
    _fields_ = [
        ("mel_first", C.POINTER(C.c_uint16)),
        ("mel_len", C.POINTER(C.c_uint16)),
        ("mel_weights", C.POINTER(C.c_float)),
        ("window", C.POINTER(C.c_float)),
        ("log_offset", C.c_float),
    ]


class DetectConfig(C.Structure):
    _fields_ = [
        ("classes", C.c_uint16 * DETECT_MAX_CLASSES),
        ("n_classes", C.c_uint32),
        ("threshold", C.c_float),
        ("window", C.c_uint32),
        ("min_count", C.c_uint32),
        ("refractory_ms", C.c_uint32),
    ]


class DetEvent(C.Structure):
    _fields_ = [("cls", C.c_uint16), ("score", C.c_float), ("patch", C.c_uint32), ("ts_ms", C.c_uint32)]


class LineOut(C.Structure):
    _fields_ = [
        ("kind", C.c_int),
        ("text", C.c_void_p),
        ("len", C.c_size_t),
        ("json", C.c_void_p),
        ("json_len", C.c_size_t),
    ]


class LineAsm(C.Structure):
    _fields_ = [
        ("buf", C.c_char * MAX_LINE),
        ("len", C.c_size_t),
        ("discarding", C.c_bool),
        ("ready", C.c_bool),
        ("proto_lines", C.c_uint32),
        ("log_lines", C.c_uint32),
        ("long_lines", C.c_uint32),
        ("bad_lines", C.c_uint32),
    ]


_ARG_CTYPE = {"enum": C.c_uint32, "uint32": C.c_uint32, "int": C.c_uint32, "num": C.c_float, "bool": C.c_bool}


def _cmd_fields() -> list[tuple[str, Any]]:
    """yf_cmd_t as yf_proto_spec.h declares it: the envelope, then one member per argument of the spec."""
    out: list[tuple[str, Any]] = [("id", C.c_uint32), ("kind", C.c_int),
                                  ("name", C.c_char * SPEC.const("CMD_NAME_MAX")), ("err_msg", C.c_char_p),
                                  ("present", C.c_uint32)]
    seen: set[str] = set()
    for a in SPEC.args():
        if a.field in seen:
            continue
        seen.add(a.field)
        if a.type == "b64":
            out += [("data", C.c_void_p), ("data_len", C.c_size_t)]
        elif a.type == "int_array":
            out += [(a.name, C.c_uint16 * a.max_len), (a.count_field, C.c_uint32)]
        else:
            out.append((a.name, _ARG_CTYPE[a.type]))
    return out


class Cmd(C.Structure):
    _fields_ = _cmd_fields()


class JsonWriter(C.Structure):
    _fields_ = [
        ("buf", C.c_void_p),
        ("cap", C.c_size_t),
        ("len", C.c_size_t),
        ("depth", C.c_uint32),
        ("has_items", C.c_uint32),
        ("overflow", C.c_bool),
    ]


class Hello(C.Structure):
    _fields_ = [
        ("fw", C.c_char_p),
        ("board", C.c_char_p),
        ("model_sha256", C.c_char_p),
        ("src", C.c_char_p),
        ("clock", C.c_char_p),
        ("model_bytes", C.c_uint32),
        ("labels", C.c_uint32),
        ("in_scale", C.c_float),
        ("out_scale", C.c_float),
        ("in_zp", C.c_int32),
        ("out_zp", C.c_int32),
        ("arena_size", C.c_uint32),
        ("arena_used", C.c_uint32),
        ("arena_where", C.c_char_p),
        ("heap_free", C.c_uint32),
        ("psram_free", C.c_uint32),
    ]


class Stats(C.Structure):
    _fields_ = [
        ("uptime_ms", C.c_uint32),
        ("inferences", C.c_uint32),
        ("dropped_samples", C.c_uint32),
        ("bad_lines", C.c_uint32),
        ("heap_free", C.c_uint32),
        ("heap_min", C.c_uint32),
        ("psram_free", C.c_uint32),
        ("psram_min", C.c_uint32),
        ("task_names", C.POINTER(C.c_char_p)),
        ("task_hwm", C.POINTER(C.c_uint32)),
        ("n_tasks", C.c_size_t),
        ("arena_size", C.c_uint32),
        ("arena_used", C.c_uint32),
        ("arena_where", C.c_char_p),
        ("patches_skipped", C.c_uint32),
    ]


class BenchSummary(C.Structure):
    _fields_ = [
        ("n", C.c_uint32),
        ("mean", C.c_double),
        ("std", C.c_double),
        ("min", C.c_uint32),
        ("max", C.c_uint32),
        ("p50", C.c_uint32),
        ("p90", C.c_uint32),
        ("p99", C.c_uint32),
    ]


# yf_device_ops_t and the structs its callbacks take


class OpErr(C.Structure):
    _fields_ = [("code", C.c_char_p), ("msg", C.c_char_p)]


class PatchReq(C.Structure):
    _fields_ = [("id", C.c_uint32), ("seq", C.c_uint32), ("seq_gap", C.c_bool), ("expected", C.c_uint32),
                ("q", C.c_void_p)]


class BenchOp(C.Structure):
    _fields_ = [("op", C.c_char_p), ("us", C.c_uint32)]


_V = C.c_void_p
_OPS = {  # yf_device_ops_t, in its order
    "emit": C.CFUNCTYPE(None, _V, _V, C.c_size_t),
    "hello": C.CFUNCTYPE(C.c_int, _V, C.POINTER(Hello), C.POINTER(OpErr)),
    "extra": C.CFUNCTYPE(None, _V, C.c_char_p, C.POINTER(JsonWriter)),
    "source": C.CFUNCTYPE(C.c_int, _V, C.c_int, C.POINTER(OpErr)),
    "pcm": C.CFUNCTYPE(C.c_int, _V, _V, C.c_size_t, C.POINTER(C.c_size_t), C.POINTER(OpErr)),
    "patch": C.CFUNCTYPE(C.c_int, _V, C.POINTER(PatchReq), C.POINTER(OpErr)),
    "stream": C.CFUNCTYPE(None, _V, C.c_bool, C.c_bool),
    "detector_get": C.CFUNCTYPE(C.c_int, _V, C.POINTER(DetectConfig), C.POINTER(C.c_uint32), C.POINTER(OpErr)),
    "detector_set": C.CFUNCTYPE(C.c_int, _V, C.POINTER(DetectConfig), C.POINTER(OpErr)),
    "bench": C.CFUNCTYPE(C.c_int, _V, C.c_uint32, C.c_uint32, C.POINTER(OpErr)),
    "reset": C.CFUNCTYPE(None, _V),
}


class DeviceOps(C.Structure):
    _fields_ = list(_OPS.items())


_P = C.c_void_p
_SIGS: dict[str, tuple[Any, list[Any]]] = {
    "yf_sizeof_frontend": (C.c_size_t, []),
    "yf_sizeof_patcher": (C.c_size_t, []),
    "yf_sizeof_detect": (C.c_size_t, []),
    "yf_sizeof_line_asm": (C.c_size_t, []),
    "yf_sizeof_cmd": (C.c_size_t, []),
    "yf_frontend_init": (C.c_int, [_P, C.POINTER(FrontendConfig)]),
    "yf_frontend_reset": (None, [_P]),
    "yf_frontend_push": (C.c_size_t, [_P, _P, C.c_size_t, _P, C.c_size_t, C.POINTER(C.c_size_t)]),
    "yf_frontend_frame": (None, [_P, _P, _P]),
    "yf_fft_mag": (None, [_P, _P, _P]),
    "yf_patch_init": (None, [_P]),
    "yf_patch_push": (C.c_int, [_P, _P]),
    "yf_patch_copy": (None, [_P, _P]),
    "yf_patch_quantize": (None, [_P, C.c_float, C.c_int32, _P]),
    "yf_quantize": (None, [_P, C.c_size_t, C.c_float, C.c_int32, _P]),
    "yf_dequantize": (None, [_P, C.c_size_t, C.c_float, C.c_int32, _P]),
    "yf_detect_init": (C.c_int, [_P, C.POINTER(DetectConfig)]),
    "yf_detect_reset": (None, [_P]),
    "yf_detect_push": (C.c_size_t, [_P, _P, C.c_size_t, C.c_uint32, _P, C.c_size_t]),
    "yf_detect_push_q": (C.c_size_t, [_P, _P, C.c_size_t, C.c_float, C.c_int32, C.c_uint32, _P, C.c_size_t]),
    "yf_b64_encode": (C.c_size_t, [_P, C.c_size_t, _P, C.c_size_t]),
    "yf_b64_decode": (C.c_int, [_P, C.c_size_t, _P, C.c_size_t, C.POINTER(C.c_size_t)]),
    "yf_line_init": (None, [C.POINTER(LineAsm)]),
    "yf_line_feed": (C.c_size_t, [C.POINTER(LineAsm), _P, C.c_size_t, C.POINTER(LineOut)]),
    "yf_line_bad": (None, [C.POINTER(LineAsm)]),
    "yf_proto_parse_cmd": (C.c_int, [_P, C.c_size_t, C.POINTER(Cmd), _P, C.c_size_t]),
    "yf_jw_begin": (None, [C.POINTER(JsonWriter), _P, C.c_size_t, C.c_char_p]),
    "yf_jw_str": (None, [C.POINTER(JsonWriter), C.c_char_p, C.c_char_p]),
    "yf_jw_int": (None, [C.POINTER(JsonWriter), C.c_char_p, C.c_int64]),
    "yf_jw_uint": (None, [C.POINTER(JsonWriter), C.c_char_p, C.c_uint64]),
    "yf_jw_num": (None, [C.POINTER(JsonWriter), C.c_char_p, C.c_double]),
    "yf_jw_bool": (None, [C.POINTER(JsonWriter), C.c_char_p, C.c_bool]),
    "yf_jw_b64": (None, [C.POINTER(JsonWriter), C.c_char_p, _P, C.c_size_t]),
    "yf_jw_obj": (None, [C.POINTER(JsonWriter), C.c_char_p]),
    "yf_jw_arr": (None, [C.POINTER(JsonWriter), C.c_char_p]),
    "yf_jw_close": (None, [C.POINTER(JsonWriter)]),
    "yf_jw_end": (C.c_size_t, [C.POINTER(JsonWriter)]),
    "yf_proto_hello": (C.c_size_t, [_P, C.c_size_t, C.POINTER(Hello)]),
    "yf_proto_stats": (C.c_size_t, [_P, C.c_size_t, C.POINTER(Stats)]),
    "yf_proto_det": (C.c_size_t, [_P, C.c_size_t, C.c_uint16, C.c_char_p, C.c_float, C.c_uint32, C.c_uint32]),
    "yf_proto_timing": (C.c_size_t, [_P, C.c_size_t, C.c_uint32, C.c_uint32, C.c_uint32, C.c_uint32]),
    "yf_proto_data": (C.c_size_t, [_P, C.c_size_t, C.c_char_p, C.c_uint32, C.c_uint32, _P, C.c_size_t]),
    "yf_proto_err": (C.c_size_t, [_P, C.c_size_t, C.c_char_p, C.c_char_p]),
    "yf_proto_reply_err": (C.c_size_t, [_P, C.c_size_t, C.c_uint32, C.c_char_p, C.c_char_p, C.c_char_p]),
    "yf_bench_summarize": (None, [_P, C.c_size_t, C.POINTER(BenchSummary)]),
    "yf_detect_config_check": (C.c_int, [C.POINTER(DetectConfig), C.c_uint32]),
    "yf_sizeof_device": (C.c_size_t, []),
    "yf_device_feed": (None, [_P, C.c_char_p, C.c_size_t]),
    "yf_device_bad_lines": (C.c_uint32, [_P]),
    "yf_device_src": (C.c_int, [_P]),
    "yf_device_hello": (C.c_size_t, [_P, _P, C.c_size_t]),
    "yf_device_stats": (C.c_size_t, [_P, C.POINTER(Stats), _P, C.c_size_t]),
    "yf_device_bench_reply": (None, [C.POINTER(JsonWriter), _P, C.c_size_t, C.c_uint32, _P, C.c_uint32, _P,
                                     C.c_size_t]),
}


@cache
def lib() -> C.CDLL:
    """The loaded library (built first if needed), with every function's signature declared."""
    so = C.CDLL(str(build()))
    for name, (res, args) in _SIGS.items():
        fn = getattr(so, name)
        fn.restype, fn.argtypes = res, args
    so.yf_device_init.restype, so.yf_device_init.argtypes = None, [_P, C.POINTER(DeviceOps), _P, C.c_int]
    so.yf_device_patch_reply.restype = C.c_size_t
    so.yf_device_patch_reply.argtypes = [_P, C.c_size_t, C.POINTER(PatchReq), _P, C.c_size_t, C.c_uint32]
    expect = {"yf_sizeof_line_asm": LineAsm, "yf_sizeof_cmd": Cmd}
    for fn_name, struct in expect.items():
        if getattr(so, fn_name)() != C.sizeof(struct):
            raise UserError(f"the ctypes mirror of a yf_core struct is stale ({fn_name}); "
                            "update target/native/binding.py.")
    return so


class _Opaque:
    """Caller-owned C struct memory, 64-byte aligned (the FFT buffer is declared 16-byte aligned)."""

    def __init__(self, size: int):
        self._mem = np.zeros(size + 64, np.uint8)
        addr = self._mem.ctypes.data
        self.ptr = C.c_void_p(addr + (-addr) % 64)


def _ptr(a: np.ndarray) -> C.c_void_p:
    return C.c_void_p(a.ctypes.data)
