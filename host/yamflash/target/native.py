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
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..cachedir import cache_root
from ..errors import UserError
from ..protocol_spec import DetectorSettings
from ..protocol_spec import load as _load_spec

# The C core ships inside the package (yf_core/: a link to firmware/components/yf_core in a checkout, a copy in
# a wheel), so an installed yamflash builds the same C the chip runs; the library goes to the user's cache.
CORE_DIR = Path(str(resources.files(__package__).joinpath("yf_core")))
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
            raise UserError(f"native.py's mirror of a yf_core struct is stale ({fn_name}); update native.py.")
    return so


class _Opaque:
    """Caller-owned C struct memory, 64-byte aligned (the FFT buffer is declared 16-byte aligned)."""

    def __init__(self, size: int):
        self._mem = np.zeros(size + 64, np.uint8)
        addr = self._mem.ctypes.data
        self.ptr = C.c_void_p(addr + (-addr) % 64)


def _ptr(a: np.ndarray) -> C.c_void_p:
    return C.c_void_p(a.ctypes.data)


# ---------------------------------------------------------------- frontend, patcher, quantizer, detector


def mel_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first bin, length, weights) of the 64 bands, as the generated header stores them."""
    from ..frontend import sparse_mel

    bands = sparse_mel()
    first = np.array([b[0] for b in bands], np.uint16)
    length = np.array([len(b[1]) for b in bands], np.uint16)
    weights = np.concatenate([b[1] for b in bands]).astype(np.float32)
    return first, length, weights


class Frontend:
    """yf_frontend: int16 PCM in any chunk size, [n, 64] float32 log-mel frames out."""

    def __init__(self, window: np.ndarray | None = None, log_offset: float = 0.001):
        self._lib = lib()
        self._first, self._len, self._w = mel_tables()
        self._win = None if window is None else np.ascontiguousarray(window, np.float32)
        cfg = FrontendConfig(
            self._first.ctypes.data_as(C.POINTER(C.c_uint16)),
            self._len.ctypes.data_as(C.POINTER(C.c_uint16)),
            self._w.ctypes.data_as(C.POINTER(C.c_float)),
            None if self._win is None else self._win.ctypes.data_as(C.POINTER(C.c_float)),
            log_offset,
        )
        self._s = _Opaque(self._lib.yf_sizeof_frontend())
        if self._lib.yf_frontend_init(self._s.ptr, C.byref(cfg)) != 0:
            raise ValueError("yf_frontend_init rejected the mel tables")

    def reset(self) -> None:
        self._lib.yf_frontend_reset(self._s.ptr)

    def push(self, pcm: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(pcm, np.int16)
        max_frames = (len(x) + FRAME_LEN) // FRAME_HOP + 1  # at most 399 samples wait in the core
        out = np.empty((max_frames, NUM_MEL), np.float32)
        used = C.c_size_t(0)
        n = self._lib.yf_frontend_push(self._s.ptr, _ptr(x), len(x), _ptr(out), max_frames, C.byref(used))
        if used.value != len(x):
            raise RuntimeError("yf_frontend_push left samples unconsumed")  # max_frames is an upper bound
        return out[:n].copy()

    def frame(self, samples: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(samples, np.int16)
        if x.shape != (FRAME_LEN,):
            raise ValueError("a frame is 400 samples")
        out = np.empty(NUM_MEL, np.float32)
        self._lib.yf_frontend_frame(self._s.ptr, _ptr(x), _ptr(out))
        return out

    def fft_mag(self, x: np.ndarray) -> np.ndarray:
        """|rfft(x, 512)| of 512 real values, by the core's FFT."""
        v = np.ascontiguousarray(x, np.float32)
        out = np.empty(257, np.float32)
        self._lib.yf_fft_mag(self._s.ptr, _ptr(v), _ptr(out))
        return out


class Patcher:
    """yf_patch: frames in, a patch every 48 frames once 96 are in."""

    def __init__(self) -> None:
        self._lib = lib()
        self._s = _Opaque(self._lib.yf_sizeof_patcher())
        self._lib.yf_patch_init(self._s.ptr)

    def push(self, frame: np.ndarray) -> bool:
        f = np.ascontiguousarray(frame, np.float32)
        return bool(self._lib.yf_patch_push(self._s.ptr, _ptr(f)))

    def copy(self) -> np.ndarray:
        out = np.empty((PATCH_FRAMES, NUM_MEL), np.float32)
        self._lib.yf_patch_copy(self._s.ptr, _ptr(out))
        return out

    def quantize(self, scale: float, zero_point: int) -> np.ndarray:
        out = np.empty((PATCH_FRAMES, NUM_MEL), np.int8)
        self._lib.yf_patch_quantize(self._s.ptr, scale, zero_point, _ptr(out))
        return out


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """yf_quantize over an array (any shape)."""
    v = np.ascontiguousarray(x, np.float32)
    out = np.empty(v.shape, np.int8)
    lib().yf_quantize(_ptr(v), v.size, scale, zero_point, _ptr(out))
    return out


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    v = np.ascontiguousarray(q, np.int8)
    out = np.empty(v.shape, np.float32)
    lib().yf_dequantize(_ptr(v), v.size, scale, zero_point, _ptr(out))
    return out


class Detector:
    """yf_detect: int8 (or float) scores per patch in, (class, smoothed score, ts_ms) events out."""

    def __init__(self, classes: list[int], threshold: float, window: int, min_count: int, refractory_ms: int,
                 out_scale: float = 1.0, out_zp: int = 0):
        self._lib = lib()
        if len(classes) > DETECT_MAX_CLASSES:
            raise ValueError(f"at most {DETECT_MAX_CLASSES} classes")
        cfg = DetectConfig()
        for i, c in enumerate(classes):
            cfg.classes[i] = c
        cfg.n_classes, cfg.threshold, cfg.window = len(classes), threshold, window
        cfg.min_count, cfg.refractory_ms = min_count, refractory_ms
        self.scale, self.zp = out_scale, out_zp
        self._s = _Opaque(self._lib.yf_sizeof_detect())
        if self._lib.yf_detect_init(self._s.ptr, C.byref(cfg)) != 0:
            raise ValueError(DetectorSettings(list(classes), threshold, window, min_count, refractory_ms).problem()
                             or "detector settings out of range")
        self._ev = (DetEvent * DETECT_MAX_CLASSES)()

    def reset(self) -> None:
        self._lib.yf_detect_reset(self._s.ptr)

    def push(self, q: np.ndarray, patch: int) -> list[tuple[int, float, int]]:
        """Feed the model's int8 output for patch number ``patch``."""
        v = np.ascontiguousarray(q, np.int8).reshape(-1)
        n = self._lib.yf_detect_push_q(self._s.ptr, _ptr(v), v.size, self.scale, self.zp, patch, self._ev,
                                       DETECT_MAX_CLASSES)
        return [(int(e.cls), float(e.score), int(e.ts_ms)) for e in self._ev[:n]]

    def push_scores(self, scores: np.ndarray, patch: int) -> list[tuple[int, float, int]]:
        """Feed float scores for patch number ``patch``."""
        v = np.ascontiguousarray(scores, np.float32).reshape(-1)
        n = self._lib.yf_detect_push(self._s.ptr, _ptr(v), v.size, patch, self._ev, DETECT_MAX_CLASSES)
        return [(int(e.cls), float(e.score), int(e.ts_ms)) for e in self._ev[:n]]


# ---------------------------------------------------------------- protocol


class LineAssembler:
    """yf_line_*: bytes in, ("proto" | "log", line bytes without newline) out; counters as on the device."""

    def __init__(self) -> None:
        self._lib = lib()
        self._a = LineAsm()
        self._lib.yf_line_init(C.byref(self._a))

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        buf = C.create_string_buffer(bytes(data), len(data))
        base = C.addressof(buf)
        pos, line = 0, LineOut()
        while pos < len(data):
            pos += self._lib.yf_line_feed(C.byref(self._a), C.c_void_p(base + pos), len(data) - pos, C.byref(line))
            if line.kind:
                out.append(("proto" if line.kind == LINE_PROTO else "log", C.string_at(line.text, line.len)))
        return out

    def mark_bad(self) -> None:
        self._lib.yf_line_bad(C.byref(self._a))

    @property
    def counts(self) -> dict[str, int]:
        a = self._a
        return {"proto": a.proto_lines, "log": a.log_lines, "long": a.long_lines, "bad": a.bad_lines}


def b64encode(data: bytes) -> str:
    out = C.create_string_buffer((len(data) + 2) // 3 * 4 + 1)
    n = lib().yf_b64_encode(data, len(data), out, len(out))
    return out.raw[:n].decode()


def b64decode(text: str | bytes, cap: int = 1 << 16) -> bytes | None:
    """Strict decode; None when the text is not canonical base64 or decodes to more than ``cap`` bytes."""
    raw = text.encode() if isinstance(text, str) else text
    out = C.create_string_buffer(max(cap, 1))
    n = C.c_size_t(0)
    if lib().yf_b64_decode(raw, len(raw), out, cap, C.byref(n)) != 0:
        return None
    return out.raw[: n.value]


def parse_cmd(json_text: bytes) -> tuple[int, dict[str, Any]]:
    """yf_proto_parse_cmd on the JSON of one line: (PARSE_* status, the command's fields as a dict).

    The dict holds what the device would act on: envelope fields, and the arguments present (payloads
    re-encoded as base64), so it compares directly with host/yamflash/board/protocol.py's parse.
    """
    cmd = Cmd()
    payload = C.create_string_buffer(PAYLOAD_MAX)
    status = lib().yf_proto_parse_cmd(json_text, len(json_text), C.byref(cmd), payload, PAYLOAD_MAX)
    if status == PARSE_BAD:
        return status, {}
    d: dict[str, Any] = {"t": "cmd", "v": 1, "id": cmd.id, "cmd": cmd.name.decode()}
    if status != PARSE_OK:
        d["msg"] = (cmd.err_msg or b"").decode()
        return status, d
    for a in SPEC.args(CMD_NAMES[cmd.kind]):
        if not (cmd.present & a.bit) and a.type != "bool":  # absent flags read as false, as the device acts
            continue
        v = getattr(cmd, a.field)
        if a.type == "enum":
            d[a.name] = a.values[v]
        elif a.type == "b64":
            d[a.name] = b64encode(C.string_at(cmd.data, cmd.data_len))
        elif a.type == "int_array":
            d[a.name] = [int(c) for c in v[: getattr(cmd, a.count_field)]]
        elif a.type == "num":
            d[a.name] = float(v)
        elif a.type == "bool":
            d[a.name] = bool(v)
        else:
            d[a.name] = int(v)
    return status, d


def encode_json(msg: dict[str, Any], cap: int = MAX_LINE + 1) -> bytes:
    """Drive the C JSON writer (yf_jw_*) with a message dict; the line it writes, or b"" if it refused."""
    L = lib()
    buf = C.create_string_buffer(cap)
    w = JsonWriter()
    L.yf_jw_begin(C.byref(w), buf, cap, str(msg["t"]).encode())

    for k, v in msg.items():
        if k not in ("t", "v"):
            _jw_put(L, C.byref(w), k.encode(), v)
    n = L.yf_jw_end(C.byref(w))
    return buf.raw[:n]


def bench_summary(us: list[int]) -> dict[str, float]:
    arr = (C.c_uint32 * max(len(us), 1))(*us)
    s = BenchSummary()
    lib().yf_bench_summarize(arr, len(us), C.byref(s))
    return {k: getattr(s, k) for k in ("n", "mean", "std", "min", "max", "p50", "p90", "p99")}


# ---------------------------------------------------------------- the board's command handling (yf_device)


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


class OpError(Exception):
    """Raised by a DeviceApp op: the command is answered ok:false with this code (an E_* of the spec) and msg."""

    def __init__(self, code: str, msg: str):
        super().__init__(msg)
        self.code, self.msg = code, msg


def detect_config(s: DetectorSettings) -> DetectConfig:
    """yf_detect_config_t for these settings."""
    if len(s.classes) > SPEC.const("MAX_CLASSES"):
        raise ValueError(f"at most {SPEC.const('MAX_CLASSES')} classes")
    cfg = DetectConfig()
    for i, c in enumerate(s.classes):
        cfg.classes[i] = c
    cfg.n_classes, cfg.threshold, cfg.window = len(s.classes), s.threshold, s.window
    cfg.min_count, cfg.refractory_ms = s.min_count, s.refractory_ms
    return cfg


def detector_settings(cfg: DetectConfig) -> DetectorSettings:
    return DetectorSettings([int(c) for c in cfg.classes[: cfg.n_classes]], float(cfg.threshold), int(cfg.window),
                            int(cfg.min_count), int(cfg.refractory_ms))


@dataclass
class PatchRequest:
    """A host patch handed to the app (yf_patch_req_t): infer ``q`` and answer with Device.patch_reply."""

    id: int
    seq: int
    seq_gap: bool
    expected: int
    q: np.ndarray  # int8 [6144]


class DeviceApp:
    """What a board behind yf_device provides (yf_device_ops_t), in Python. Raise OpError to refuse a command."""

    def emit(self, line: bytes) -> None:
        raise NotImplementedError

    def hello(self) -> dict[str, Any]:
        """yf_hello_t's fields: fw, board, model_sha256, clock, model_bytes, labels, in_scale, in_zp,
        out_scale, out_zp, arena_size, arena_used, arena_where, heap_free, psram_free."""
        raise NotImplementedError

    def extra(self, what: str) -> dict[str, Any]:
        """Board-specific members for a "hello", "info" or "stats" line."""
        return {}

    def source(self, src: str) -> None:
        raise NotImplementedError

    def pcm(self, pcm: np.ndarray) -> int:
        raise NotImplementedError

    def patch(self, req: PatchRequest) -> None:
        raise NotImplementedError

    def stream(self, scores: bool, patches: bool) -> None:
        raise NotImplementedError

    def detector_get(self) -> tuple[DetectorSettings, int]:
        raise NotImplementedError

    def detector_set(self, settings: DetectorSettings) -> None:
        raise NotImplementedError

    def bench(self, id: int, n: int) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError


_SRC = SPEC.arg("source", "src").values
_HELLO_STR = ("fw", "board", "model_sha256", "src", "clock", "arena_where")


def _jw_put(L: C.CDLL, w: Any, key: bytes | None, v: Any) -> None:
    """One member (or array element) through the C JSON writer."""
    if isinstance(v, bool):
        L.yf_jw_bool(w, key, v)
    elif isinstance(v, (int, np.integer)):
        (L.yf_jw_int if v < 0 else L.yf_jw_uint)(w, key, int(v))
    elif isinstance(v, (float, np.floating)):
        L.yf_jw_num(w, key, float(v))
    elif isinstance(v, str):
        L.yf_jw_str(w, key, v.encode())
    elif isinstance(v, dict):
        L.yf_jw_obj(w, key)
        for k, x in v.items():
            _jw_put(L, w, str(k).encode(), x)
        L.yf_jw_close(w)
    elif isinstance(v, (list, tuple)):
        L.yf_jw_arr(w, key)
        for x in v:
            _jw_put(L, w, None, x)
        L.yf_jw_close(w)
    else:
        raise TypeError(f"cannot encode {type(v).__name__}")


class Device:
    """yf_device through ctypes: the firmware's own command handling, with ``app`` behind its ops.

    Call ``feed`` from one thread (the console's); ``stats``, ``hello`` and the reply builders take their own
    buffers and may run on others. An exception in an op answers its command E_INTERNAL, as the sim always did.
    """

    def __init__(self, app: DeviceApp, src: str = "mic"):
        self._lib = lib()
        self.app = app
        self._keep: list[Any] = []  # strings C reads after an op returns, alive until the next command
        self._ops = DeviceOps(**{name: _OPS[name](getattr(self, f"_op_{name}")) for name in _OPS})
        self._s = _Opaque(self._lib.yf_sizeof_device())
        self._lib.yf_device_init(self._s.ptr, C.byref(self._ops), None, _SRC.index(src))

    # ---- driving it
    def feed(self, data: bytes) -> None:
        self._keep = []
        self._lib.yf_device_feed(self._s.ptr, bytes(data), len(data))

    @property
    def bad_lines(self) -> int:
        return int(self._lib.yf_device_bad_lines(self._s.ptr))

    @property
    def src(self) -> str:
        return _SRC[self._lib.yf_device_src(self._s.ptr)]

    def hello(self) -> bytes:
        """Emit (and return) a hello line."""
        buf = C.create_string_buffer(MAX_LINE + 1)
        n = self._lib.yf_device_hello(self._s.ptr, buf, len(buf))
        return buf.raw[:n]

    def stats(self, **fields: Any) -> bytes:
        """Emit (and return) a stats line: yf_stats_t's fields by name (bad_lines is the device's own)."""
        keep = [str(k).encode() for k in fields.get("stack_hwm", {})]
        names = (C.c_char_p * max(len(keep), 1))(*keep)
        hwm = (C.c_uint32 * max(len(keep), 1))(*[int(v) for v in fields.get("stack_hwm", {}).values()])
        s = Stats()
        for name, _ in Stats._fields_:
            if name in fields and name not in ("stack_hwm", "arena_where"):
                setattr(s, name, int(fields[name]))
        where = str(fields.get("arena_where", "")).encode()
        s.task_names, s.task_hwm, s.n_tasks, s.arena_where = names, hwm, len(keep), where
        buf = C.create_string_buffer(MAX_LINE + 1)
        n = self._lib.yf_device_stats(self._s.ptr, C.byref(s), buf, len(buf))
        return buf.raw[:n]

    @staticmethod
    def patch_reply(req: PatchRequest, scores: np.ndarray, invoke_us: int) -> bytes:
        q = np.ascontiguousarray(scores, np.int8).reshape(-1)
        r = PatchReq(req.id, req.seq, req.seq_gap, req.expected, None)
        buf = C.create_string_buffer(MAX_LINE + 1)
        n = lib().yf_device_patch_reply(buf, len(buf), C.byref(r), _ptr(q), q.size, invoke_us)
        return buf.raw[:n]

    @staticmethod
    def bench_reply(id: int, us: list[int], ops: list[tuple[str, int]] = (), **extra: Any) -> bytes:  # type: ignore[assignment]
        """The bench reply for invoke times ``us`` (nearest-rank percentiles, as the chip), plus ``extra`` members."""
        L = lib()
        arr = (C.c_uint32 * max(len(us), 1))(*[min(max(int(u), 0), 0xFFFFFFFF) for u in us])
        keep = [o.encode() for o, _ in ops]
        bops = (BenchOp * max(len(ops), 1))(*[BenchOp(k, int(t)) for k, (_, t) in zip(keep, ops, strict=True)])
        buf = C.create_string_buffer(MAX_LINE + 1)
        w = JsonWriter()
        L.yf_device_bench_reply(C.byref(w), buf, len(buf), id, arr, len(us), bops, len(ops))
        for k, v in extra.items():
            _jw_put(L, C.byref(w), k.encode(), v)
        n = L.yf_jw_end(C.byref(w))  # before reading buf: the end writes the closing bytes
        return buf.raw[:n]

    # ---- the ops C calls
    def _fail(self, err: Any, code: str, msg: str) -> int:
        c, m = code.encode(), msg.encode("utf-8", "replace")
        self._keep += [c, m]
        err[0].code, err[0].msg = c, m
        return -1

    def _guard(self, err: Any, fn: Any, *args: Any) -> int:
        try:
            fn(*args)
        except OpError as exc:
            return self._fail(err, exc.code, exc.msg)
        except Exception as exc:  # a bug must not take the board down: report it like the firmware would
            return self._fail(err, "E_INTERNAL", f"{type(exc).__name__}: {exc}")
        return 0

    def _op_emit(self, ctx: Any, line: int, n: int) -> None:
        if n:
            self.app.emit(C.string_at(line, n))

    def _op_hello(self, ctx: Any, h: Any, err: Any) -> int:
        def fill() -> None:
            for k, v in self.app.hello().items():
                if k in _HELLO_STR:
                    b = str(v).encode()
                    self._keep.append(b)
                    setattr(h[0], k, b)
                else:
                    setattr(h[0], k, v)
        return self._guard(err, fill)

    def _op_extra(self, ctx: Any, what: bytes, w: Any) -> None:
        try:
            for k, v in self.app.extra(what.decode()).items():
                _jw_put(self._lib, w, k.encode(), v)
        except Exception:  # extra members are optional: the line goes out without them
            return

    def _op_source(self, ctx: Any, src: int, err: Any) -> int:
        return self._guard(err, self.app.source, _SRC[src])

    def _op_pcm(self, ctx: Any, data: int, n: int, accepted: Any, err: Any) -> int:
        pcm = np.ctypeslib.as_array(C.cast(data, C.POINTER(C.c_int16)), (n,)).copy()
        out: list[int] = []
        rc = self._guard(err, lambda: out.append(int(self.app.pcm(pcm))))
        accepted[0] = out[0] if out else 0
        return rc

    def _op_patch(self, ctx: Any, r: Any, err: Any) -> int:
        req = r[0]
        q = np.ctypeslib.as_array(C.cast(req.q, C.POINTER(C.c_int8)), (SPEC.const("PATCH_BYTES"),)).copy()
        return self._guard(err, self.app.patch, PatchRequest(req.id, req.seq, bool(req.seq_gap), req.expected, q))

    def _op_stream(self, ctx: Any, scores: bool, patches: bool) -> None:
        self.app.stream(bool(scores), bool(patches))

    def _op_detector_get(self, ctx: Any, cfg: Any, n_labels: Any, err: Any) -> int:
        got: list[Any] = []
        rc = self._guard(err, lambda: got.extend(self.app.detector_get()))
        if rc == 0:
            C.memmove(cfg, C.byref(detect_config(got[0])), C.sizeof(DetectConfig))
            n_labels[0] = int(got[1])
        return rc

    def _op_detector_set(self, ctx: Any, cfg: Any, err: Any) -> int:
        return self._guard(err, self.app.detector_set, detector_settings(cfg[0]))

    def _op_bench(self, ctx: Any, id: int, n: int, err: Any) -> int:
        return self._guard(err, self.app.bench, int(id), int(n))

    def _op_reset(self, ctx: Any) -> None:
        self.app.reset()
