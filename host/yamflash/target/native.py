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

from ..cachedir import cache_root
from ..errors import UserError

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
MAX_LINE = 12288
PAYLOAD_MAX = 8192
DETECT_MAX_CLASSES = 32

LINE_PROTO, LINE_LOG = 1, 2
PARSE_OK, PARSE_BAD, PARSE_UNKNOWN_CMD, PARSE_ARG = 0, 1, 2, 3
CMD_NAMES = ["", "ping", "info", "source", "pcm", "patch", "stream", "detector", "bench", "reset"]
DET_HAS = {"classes": 1, "threshold": 2, "window": 4, "min_count": 8, "refractory_ms": 16}


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


class Cmd(C.Structure):
    _fields_ = [
        ("id", C.c_uint32),
        ("kind", C.c_int),
        ("name", C.c_char * 24),
        ("err_msg", C.c_char_p),
        ("src", C.c_int),
        ("seq", C.c_uint32),
        ("data", C.c_void_p),
        ("data_len", C.c_size_t),
        ("scores", C.c_bool),
        ("patches", C.c_bool),
        ("det_present", C.c_uint32),
        ("classes", C.c_uint16 * 32),
        ("n_classes", C.c_uint32),
        ("threshold", C.c_float),
        ("window", C.c_uint32),
        ("min_count", C.c_uint32),
        ("refractory_ms", C.c_uint32),
        ("has_n", C.c_bool),
        ("n", C.c_uint32),
    ]


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
}


@cache
def lib() -> C.CDLL:
    """The loaded library (built first if needed), with every function's signature declared."""
    so = C.CDLL(str(build()))
    for name, (res, args) in _SIGS.items():
        fn = getattr(so, name)
        fn.restype, fn.argtypes = res, args
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
            raise ValueError("detector settings out of range (window 1..32, min_count >= 1, threshold 0..1)")
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
    name = CMD_NAMES[cmd.kind]
    if name == "source":
        d["src"] = "host" if cmd.src == 1 else "mic"
    elif name in ("pcm", "patch"):
        d["seq"] = cmd.seq
        d["d" if name == "pcm" else "q"] = b64encode(C.string_at(cmd.data, cmd.data_len))
    elif name == "stream":
        d["scores"], d["patches"] = bool(cmd.scores), bool(cmd.patches)
    elif name == "detector":
        if cmd.det_present & DET_HAS["classes"]:
            d["classes"] = [int(c) for c in cmd.classes[: cmd.n_classes]]
        if cmd.det_present & DET_HAS["threshold"]:
            d["threshold"] = float(cmd.threshold)
        for key in ("window", "min_count", "refractory_ms"):
            if cmd.det_present & DET_HAS[key]:
                d[key] = int(getattr(cmd, key))
    elif name == "bench" and cmd.has_n:
        d["n"] = cmd.n
    return status, d


def encode_json(msg: dict[str, Any], cap: int = MAX_LINE + 1) -> bytes:
    """Drive the C JSON writer (yf_jw_*) with a message dict; the line it writes, or b"" if it refused."""
    L = lib()
    buf = C.create_string_buffer(cap)
    w = JsonWriter()
    L.yf_jw_begin(C.byref(w), buf, cap, str(msg["t"]).encode())

    def put(key: bytes | None, v: Any) -> None:
        if isinstance(v, bool):
            L.yf_jw_bool(C.byref(w), key, v)
        elif isinstance(v, int):
            (L.yf_jw_int if v < 0 else L.yf_jw_uint)(C.byref(w), key, v)
        elif isinstance(v, float):
            L.yf_jw_num(C.byref(w), key, v)
        elif isinstance(v, str):
            L.yf_jw_str(C.byref(w), key, v.encode())
        elif isinstance(v, dict):
            L.yf_jw_obj(C.byref(w), key)
            for k, x in v.items():
                put(k.encode(), x)
            L.yf_jw_close(C.byref(w))
        elif isinstance(v, list):
            L.yf_jw_arr(C.byref(w), key)
            for x in v:
                put(None, x)
            L.yf_jw_close(C.byref(w))
        else:
            raise TypeError(f"cannot encode {type(v).__name__}")

    for k, v in msg.items():
        if k not in ("t", "v"):
            put(k.encode(), v)
    n = L.yf_jw_end(C.byref(w))
    return buf.raw[:n]


def bench_summary(us: list[int]) -> dict[str, float]:
    arr = (C.c_uint32 * max(len(us), 1))(*us)
    s = BenchSummary()
    lib().yf_bench_summarize(arr, len(us), C.byref(s))
    return {k: getattr(s, k) for k in ("n", "mean", "std", "min", "max", "p50", "p90", "p99")}
