"""The virtual ESP32-S3: a pseudo-terminal that behaves like the flashed board (DESIGN.md, "The virtual board").

Threads mirror the firmware's tasks: a capture task (the WAV "microphone", paced in real time or as
fast as the consumer takes it), an inference task (frontend -> patch -> TFLM -> detector), a console
task (commands), and a stats timer. Capture writes into a bounded ring like the I2S DMA buffers; when
the inference task falls behind in real-time mode the ring overflows and the lost samples are counted
in `dropped_samples`, never hidden.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import select
import threading
import time
import tty
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ...frontend import PARAMS
from ...target import profiles
from .. import wire
from .alloc import Allocation, allocate
from .boot import BootError, Image, boot
from .core import DetectorConfig, Pipeline, make_detector

FW_LOG = "I ({ms}) {tag}: {text}"
# The RAM of the board the virtual one stands in for (profiles.py: the figures and their sources).
HEAP_INTERNAL = profiles.get("sim").internal_free
PSRAM = profiles.get("sim").psram_bytes


class Ring:
    """Bounded sample FIFO between capture and inference; ``put`` returns how many samples fit."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.chunks: deque[tuple[np.ndarray, float]] = deque()
        self.size = 0
        self.cv = threading.Condition()

    def put(self, pcm: np.ndarray, block: bool, timeout: float = 5.0) -> int:
        deadline = time.monotonic() + timeout
        with self.cv:
            if block:
                while self.capacity - self.size < len(pcm) and time.monotonic() < deadline:
                    self.cv.wait(0.05)
            n = min(len(pcm), self.capacity - self.size)
            if n > 0:
                self.chunks.append((pcm[:n].copy(), time.monotonic()))
                self.size += n
                self.cv.notify_all()
            return max(n, 0)

    def get(self, timeout: float = 0.1) -> tuple[np.ndarray, float] | None:
        with self.cv:
            if not self.chunks:
                self.cv.wait(timeout)
            if not self.chunks:
                return None
            pcm, t = self.chunks.popleft()
            self.size -= len(pcm)
            self.cv.notify_all()
            return pcm, t

    def clear(self) -> None:
        with self.cv:
            self.chunks.clear()
            self.size = 0
            self.cv.notify_all()


class VirtualBoard:
    """One virtual board on a pty. ``path`` is the device to open, as /dev/ttyACM0 would be."""

    def __init__(self, flash_file: str | Path, mic: str | Path | None = None, fast: bool = False,
                 loop: bool = False, stats_period: float = 5.0, ring_ms: int = 1000):
        self.flash_file = Path(flash_file)
        self.mic_path = Path(mic) if mic else None
        self.mic_pcm = self._load_mic() if self.mic_path else None  # here, not in the capture thread: a bad
        # file is one error line before the board starts, never a thread's traceback while it runs
        self.fast, self.loop = fast, loop
        self.stats_period = stats_period
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.ring = Ring(PARAMS.sample_rate * ring_ms // 1000)
        self.wlock = threading.Lock()
        self.plock = threading.RLock()  # held by the inference task while it processes; commands share it
        self.stop = threading.Event()
        self.splitter = wire.Splitter()
        self.tx_dropped = 0
        self.image: Image | None = None
        self.boot_error: BootError | None = None
        self.model: Any = None
        self.init_us: dict[str, int] = {}
        self.alloc: Allocation | None = None
        self._reset_state()
        self.threads = [threading.Thread(target=f, name=n, daemon=True) for f, n in
                        ((self._console, "console"), (self._inference, "inference"), (self._stats, "stats"),
                         (self._capture, "capture"))]

    # ---- lifecycle -------------------------------------------------------------------------------
    def _load_mic(self) -> np.ndarray:
        from ...audio import load_audio
        from ..client import to_pcm16

        assert self.mic_path is not None
        return to_pcm16(load_audio(self.mic_path))

    def _reset_state(self) -> None:
        self.t_boot = time.monotonic()
        self.src = "mic" if self.mic_path else "host"
        self.inferences = self.dropped = self.bad_lines = 0
        self.pcm_seq = self.patch_seq = 0
        self.stream_scores = self.stream_patches = False
        self.det_cfg = DetectorConfig()
        self.last_patch: np.ndarray | None = None
        self.stream_seq = {"scores": 0, "patch": 0}

    def start(self) -> VirtualBoard:
        self.boot()
        for t in self.threads:
            t.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.ring.clear()
        for t in self.threads:
            if t.is_alive() and t is not threading.current_thread():
                t.join(timeout=2)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def ms(self) -> int:
        return int((time.monotonic() - self.t_boot) * 1000)

    def log(self, text: str, tag: str = "yamflash") -> None:
        self._write((FW_LOG.format(ms=self.ms(), tag=tag, text=text) + "\n").encode())

    def boot(self) -> None:
        """Power-on: validate flash as the firmware does, load the model, announce with hello (or err)."""
        from ...errors import UserError
        from ...model.tflm import MicroModel

        with self.plock:
            self._reset_state()
            self.ring.clear()
            self.log("ESP-ROM:esp32s3 (virtual board, host clock)", "boot")
            self.image, self.boot_error, self.model = None, None, None
            try:
                t0 = time.perf_counter()
                self.image = boot(self.flash_file)
                t1 = time.perf_counter()
                meta = self.image.meta
                arena = int(meta.get("arena_size") or 0) or None
                self.alloc = None
                if arena and meta.get("arena_used"):  # the chip's figure: allocate as yf_inference.cpp does
                    self.alloc = allocate(arena, int(meta["arena_used"]), meta.get("arena_where") == "internal",
                                          profiles.get("sim"))
                    if self.alloc.rc == -1:
                        raise BootError("E_MODEL", self.alloc.err)
                    arena = None  # the host's reference interpreter sizes its own arena; the figures are the chip's
                try:
                    self.model = MicroModel(self.image.model, arena)  # interpreter + AllocateTensors
                    self.init_us = {"load": round((t1 - t0) * 1e6), "alloc": round((time.perf_counter() - t1) * 1e6)}
                except UserError as exc:
                    raise BootError("E_ALLOC" if "arena" in str(exc).lower() else "E_MODEL", str(exc)) from None
            except BootError as exc:
                self.boot_error = exc
                self.log(f"boot refused: {exc.msg}", "model")
                self.emit({"t": "err", "code": exc.code, "msg": exc.msg})
                return
            if self.alloc is not None and self.alloc.rc == -2:  # runs on with the 4x PSRAM arena, as the chip
                self.log(self.alloc.err, "yf_infer")
                self.emit({"t": "err", "code": "E_ALLOC", "msg": self.alloc.err})
            si, zi = self.model.input_quant
            so, zo = self.model.output_quant
            self.quant = (si, zi, so, zo)
            self.pipeline = Pipeline(si, zi)
            gen_det = self.image.meta.get("detector")  # the generated yf_detector_config.h, as the chip boots
            if isinstance(gen_det, dict):
                self.det_cfg = DetectorConfig(**{k: gen_det[k] for k in asdict(DetectorConfig()) if k in gen_det})
            self.detector = make_detector(self.det_cfg, so, zo)
            self.n_classes = int(self.model.out["shape"][-1])
            labels = self.image.meta.get("labels")
            self.labels = list(labels) if isinstance(labels, list) and len(labels) == self.n_classes \
                else [f"class_{i}" for i in range(self.n_classes)]
            self.log(f"model {self.image.model_sha256[:12]} ({len(self.image.model)} bytes), "
                     f"arena {self.arena()['size']} bytes in {self.arena()['where']}, core {self.pipeline.core}",
                     "model")
            self.emit(self.hello())

    def hello(self) -> dict[str, Any]:
        assert self.image is not None and self.model is not None
        p = PARAMS
        si, zi, so, zo = self.quant
        meta = self.image.meta
        arena = self.arena()
        return {"t": "hello", "fw": self.image.fw, "proto": 1, "board": "sim",
                "model_sha256": self.image.model_sha256, "model_bytes": len(self.image.model),
                "labels": self.n_classes,
                "frontend": {"sr": p.sample_rate, "win": p.frame_length, "hop": p.frame_step,
                             "fft": p.fft_length, "mel": p.num_mel_bins, "patch": p.patch_frames,
                             "patch_hop": p.patch_hop_frames, "log_offset": p.log_offset},
                "input": {"scale": si, "zp": zi}, "output": {"scale": so, "zp": zo},
                "arena": arena, **self.memory(arena), "mem": "nominal", "src": self.src, "clock": "host",
                "init_us": self.init_us,
                "core": self.pipeline.core, "build": meta.get("build")}

    def arena(self) -> dict[str, Any]:
        if self.alloc is not None:
            return {"size": self.alloc.size, "used": self.alloc.used, "where": self.alloc.where}
        meta = self.image.meta if self.image else {}
        size = int(self.model.arena_size) if self.model else 0
        return {"size": size, "used": int(meta.get("arena_used") or size),
                "where": str(meta.get("arena_where") or ("internal" if HEAP_INTERNAL - size >= 64 * 1024 else "psram"))}

    def memory(self, arena: dict[str, Any]) -> dict[str, int]:
        internal = HEAP_INTERNAL - (arena["size"] if arena["where"] == "internal" else 0)
        psram = PSRAM - (arena["size"] if arena["where"] == "psram" else 0)
        return {"heap_free": internal, "psram_free": psram}

    # ---- output ----------------------------------------------------------------------------------
    def emit(self, msg: dict[str, Any]) -> None:
        self._write(wire.encode(msg))

    def _write(self, data: bytes) -> None:
        """Like USB-CDC with nobody reading: wait a while for room, then drop the line (and count it)."""
        with self.wlock:
            view = memoryview(data)
            deadline = time.monotonic() + 2.0
            while view:
                try:
                    _, w, _ = select.select([], [self.master], [], max(0.0, deadline - time.monotonic()))
                    if not w:
                        self.tx_dropped += 1
                        return
                    n = os.write(self.master, view)
                except OSError:
                    return
                view = view[n:]

    # ---- console task ----------------------------------------------------------------------------
    def _console(self) -> None:
        while not self.stop.is_set():
            try:
                r, _, _ = select.select([self.master], [], [], 0.2)
                if not r:
                    continue
                data = os.read(self.master, 65536)
            except OSError:
                if self.stop.is_set():
                    return
                time.sleep(0.05)
                continue
            for raw in self.splitter.feed(data):
                self._line(raw)
            self.bad_lines += self.splitter.overlong
            self.splitter.overlong = 0

    def _line(self, raw: bytes) -> None:
        line = wire.classify(raw, device=True)
        if line.kind == "log":  # plain text is ignored and not counted, as yf_tasks.c's console does
            return
        if line.kind == "bad":
            if line.reply is not None:  # addressable (id + known shape) but wrong: it still gets its reply
                self.emit(line.reply)
            else:
                self.bad_lines += 1
            return
        msg = line.msg
        cid, cmd = msg["id"], msg["cmd"]
        handler = getattr(self, f"cmd_{cmd}", None)
        if handler is None:
            self.reply(cid, cmd, err="E_UNKNOWN_CMD", msg=f"unknown command {cmd!r}")
            return
        try:
            fields = handler(msg)
        except CmdError as exc:
            self.reply(cid, cmd, err=exc.code, msg=exc.msg, **exc.fields)
            return
        except Exception as exc:  # a bug must not take the board down: report it like the firmware would
            self.reply(cid, cmd, err="E_INTERNAL", msg=f"{type(exc).__name__}: {exc}")
            return
        self.reply(cid, cmd, **(fields or {}))
        if cmd == "reset":
            threading.Thread(target=self._reboot, daemon=True).start()

    def reply(self, cid: int, cmd: str, err: str | None = None, msg: str = "", **fields: Any) -> None:
        body: dict[str, Any] = {"t": "reply", "id": cid, "cmd": cmd, "ok": err is None}
        if err is not None:
            body.update(err=err, msg=msg)
        body.update(fields)
        self.emit(body)

    def _reboot(self) -> None:
        time.sleep(0.05)
        self.boot()

    def _need_model(self) -> None:
        if self.model is None:
            e = self.boot_error
            raise CmdError("E_MODEL", e.msg if e else "no model loaded")

    # ---- commands --------------------------------------------------------------------------------
    def cmd_ping(self, msg: dict[str, Any]) -> dict[str, Any]:
        return {}

    def cmd_info(self, msg: dict[str, Any]) -> dict[str, Any]:
        self._need_model()
        h = self.hello()
        h.pop("t")
        return h

    def cmd_source(self, msg: dict[str, Any]) -> dict[str, Any]:
        self._need_model()
        src = msg.get("src")
        if src not in ("mic", "host"):
            raise CmdError("E_ARG", 'src must be "mic" or "host"')
        if src == "mic" and self.mic_path is None:
            raise CmdError("E_ARG", "this virtual board has no microphone (start it with --mic FILE)")
        with self.plock:
            self.src = src
            self.ring.clear()
            self.pipeline.reset()
            self.detector = make_detector(self.det_cfg, self.quant[2], self.quant[3])
            self.pcm_seq = self.patch_seq = 0  # like the firmware: both host streams start again
            self.stream_seq = {"scores": 0, "patch": 0}
        return {"src": src}

    def _seq(self, msg: dict[str, Any], expected: int) -> int:
        seq = msg.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= 0xFFFFFFFF:
            raise CmdError("E_ARG", "seq must be a uint32")
        return seq

    def _b64(self, msg: dict[str, Any], key: str) -> bytes:
        val = msg.get(key)
        if not isinstance(val, str):
            raise CmdError("E_ARG", f"{key} must be a base64 string")
        try:
            return base64.b64decode(val, validate=True)
        except (binascii.Error, ValueError):
            raise CmdError("E_ARG", f"{key} is not valid base64") from None

    def cmd_pcm(self, msg: dict[str, Any]) -> dict[str, Any]:
        self._need_model()
        seq = self._seq(msg, self.pcm_seq)
        data = self._b64(msg, "d")
        if len(data) % 2 or not 1 <= len(data) // 2 <= 4096:
            raise CmdError("E_ARG", "d must hold 1..4096 int16 samples")
        if self.src != "host":
            raise CmdError("E_BUSY", 'the source is the microphone; send {"cmd":"source","src":"host"} first')
        pcm = np.frombuffer(data, "<i2").astype(np.int16)
        accepted = self.ring.put(pcm, block=True, timeout=5.0)
        expected, self.pcm_seq = self.pcm_seq, (seq + 1) & 0xFFFFFFFF
        if seq != expected:
            raise CmdError("E_SEQ", f"pcm seq {seq}, expected {expected}", seq=seq, accepted=accepted,
                           expected=expected)
        return {"seq": seq, "accepted": accepted}

    def cmd_patch(self, msg: dict[str, Any]) -> dict[str, Any]:
        self._need_model()
        seq = self._seq(msg, self.patch_seq)
        q = self._b64(msg, "q")
        if len(q) != 96 * 64:
            raise CmdError("E_ARG", f"q must hold 6144 int8 values, got {len(q)}")
        patch = np.frombuffer(q, np.int8).reshape(96, 64)
        with self.plock:
            t0 = time.perf_counter()
            out = self.model.run_int8(patch)
            us = int((time.perf_counter() - t0) * 1e6)
            self.last_patch = patch
        expected, self.patch_seq = self.patch_seq, (seq + 1) & 0xFFFFFFFF
        fields = {"seq": seq, "q": wire.b64(np.asarray(out, np.int8).tobytes()), "invoke_us": us}
        if seq != expected:
            raise CmdError("E_SEQ", f"patch seq {seq}, expected {expected}", expected=expected, **fields)
        return fields

    def cmd_stream(self, msg: dict[str, Any]) -> dict[str, Any]:
        s, p = msg.get("scores", False), msg.get("patches", False)
        if not isinstance(s, bool) or not isinstance(p, bool):
            raise CmdError("E_ARG", "scores and patches must be true or false")
        self.stream_scores, self.stream_patches = s, p
        return {"scores": s, "patches": p}

    def cmd_detector(self, msg: dict[str, Any]) -> dict[str, Any]:
        self._need_model()
        cfg = DetectorConfig(**{k: v for k, v in asdict(self.det_cfg).items()})
        types = {"classes": list, "threshold": (int, float), "window": int, "min_count": int, "refractory_ms": int}
        for k, t in types.items():
            if k in msg:
                v = msg[k]
                if isinstance(v, bool) or not isinstance(v, t) or (k == "classes" and not all(
                        isinstance(c, int) and not isinstance(c, bool) for c in v)):
                    raise CmdError("E_ARG", f"{k} has the wrong type")
                setattr(cfg, k, float(v) if k == "threshold" else v)
        problem = cfg.validate(self.n_classes)
        if problem:
            raise CmdError("E_ARG", problem)
        with self.plock:
            self.det_cfg = cfg
            self.detector = make_detector(cfg, self.quant[2], self.quant[3])
        return asdict(cfg)

    def cmd_bench(self, msg: dict[str, Any]) -> dict[str, Any]:
        self._need_model()
        n = msg.get("n", 10)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 1000:
            raise CmdError("E_ARG", "n must be 1..1000")
        patch = self.last_patch if self.last_patch is not None else np.zeros((96, 64), np.int8)
        times = []
        with self.plock:
            for _ in range(n):
                t0 = time.perf_counter()
                self.model.run_int8(patch)
                times.append((time.perf_counter() - t0) * 1e6)
        a = np.array(times)
        stats = {"mean": float(a.mean()), "min": float(a.min()), "max": float(a.max()),
                 "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
                 "p99": float(np.percentile(a, 99)), "std": float(a.std())}
        return {"n": n, "invoke_us": {k: round(v) for k, v in stats.items()}, "clock": "host"}

    def cmd_reset(self, msg: dict[str, Any]) -> dict[str, Any]:
        return {}

    # ---- inference task --------------------------------------------------------------------------
    def _inference(self) -> None:
        while not self.stop.is_set():
            item = self.ring.get(0.1)
            if item is None:
                continue
            pcm, t_in = item
            with self.plock:
                if self.model is None:
                    continue
                for patch in self.pipeline.push(pcm, t_in):
                    self._infer(patch)

    def _infer(self, patch: Any) -> None:
        t0 = time.perf_counter()
        out = np.asarray(self.model.run_int8(patch.q), np.int8)
        invoke_us = (time.perf_counter() - t0) * 1e6
        self.inferences += 1
        self.last_patch = patch.q
        e2e_us = (time.monotonic() - patch.last_sample_t) * 1e6
        if self.stream_patches:
            self.emit({"t": "patch", "patch": patch.index, "seq": self._next("patch"),
                       "q": wire.b64(patch.q.astype(np.int8).tobytes())})
        if self.stream_scores:
            self.emit({"t": "scores", "patch": patch.index, "seq": self._next("scores"), "q": wire.b64(out.tobytes())})
        self.emit({"t": "timing", "patch": patch.index, "frontend_us": round(patch.frontend_us),
                   "invoke_us": round(invoke_us), "e2e_us": round(e2e_us)})
        for cls, score, ts in self.detector.push(out, patch.index):
            self.emit({"t": "det", "cls": int(cls), "label": self.labels[int(cls)], "score": round(float(score), 4),
                       "ts_ms": int(ts), "patch": patch.index})

    def _next(self, kind: str) -> int:
        s = self.stream_seq[kind]
        self.stream_seq[kind] = (s + 1) & 0xFFFFFFFF
        return s

    # ---- capture task ----------------------------------------------------------------------------
    def _capture(self) -> None:
        if self.mic_pcm is None:
            return
        pcm = self.mic_pcm
        chunk = 480  # 30 ms, a typical I2S DMA buffer
        pos, t_next = 0, time.monotonic()
        while not self.stop.is_set():
            if pos >= len(pcm):
                if not self.loop:
                    return
                pos = 0
            part = pcm[pos : pos + chunk]
            pos += len(part)
            if not self.fast:
                t_next += len(part) / PARAMS.sample_rate
                time.sleep(max(0.0, t_next - time.monotonic()))
            if self.src != "mic" or self.model is None:
                continue  # the microphone runs regardless; its audio only counts when it is the source
            took = self.ring.put(part, block=self.fast, timeout=1e9 if self.fast else 0.0)
            self.dropped += len(part) - took

    # ---- stats timer -----------------------------------------------------------------------------
    def _stats(self) -> None:
        while not self.stop.wait(self.stats_period):
            if self.model is not None:
                self.emit(self.stats())

    def stats(self) -> dict[str, Any]:
        arena = self.arena()
        mem = self.memory(arena)
        return {"t": "stats", "uptime_ms": self.ms(), "inferences": self.inferences,
                "dropped_samples": self.dropped, "bad_lines": self.bad_lines,
                "heap_free": mem["heap_free"], "heap_min": mem["heap_free"], "psram_free": mem["psram_free"],
                "psram_min": mem["psram_free"], "stack_hwm": {},
                "arena": arena, "tx_dropped": self.tx_dropped, "clock": "host"}


class CmdError(Exception):
    def __init__(self, code: str, msg: str, **fields: Any):
        super().__init__(msg)
        self.code, self.msg, self.fields = code, msg, fields
