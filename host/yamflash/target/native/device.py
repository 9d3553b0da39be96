"""yf_core's command handling (yf_device) through ctypes: the virtual board answers every command with the
firmware's own C, the app's side given as Python callbacks (DeviceApp)."""

from __future__ import annotations

import ctypes as C
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...protocol_spec import DetectorSettings
from .binding import (
    _OPS,
    MAX_LINE,
    SPEC,
    BenchOp,
    DetectConfig,
    DeviceOps,
    JsonWriter,
    PatchReq,
    Stats,
    _Opaque,
    _ptr,
    lib,
)
from .codec import _jw_put


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
