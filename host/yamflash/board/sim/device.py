"""The virtual ESP32-S3: a pseudo-terminal that behaves like the flashed board (DESIGN.md, "The virtual board").

Threads mirror the firmware's tasks: a capture task (the WAV "microphone", paced in real time or as
fast as the consumer takes it), an inference task (frontend -> patch -> TFLM -> detector), a console
task (commands), and a stats timer. Capture writes into a bounded ring like the I2S DMA buffers; when
the inference task falls behind in real-time mode the ring overflows and the lost samples are counted
in `dropped_samples`, never hidden.

Commands are answered by the firmware's own command code, yf_core's yf_device, through the native binding:
decoding, ranges, error codes, seq tracking, detector updates and reply shapes are the chip's. This module
only supplies what the firmware's tasks supply there (``_Ops``): the model, the audio ring, the detector.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from collections import deque
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

from ...frontend import PARAMS
from ...target import native, profiles
from .. import wire
from .alloc import Allocation, allocate
from .boot import BootError, Image, boot
from .core import DetectorConfig, Pipeline, make_detector

OpError = native.OpError

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
        self.inferences = self.dropped = 0
        self.device = native.Device(_Ops(self), self.src)  # a reboot forgets counts, seqs and the source
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

    @property
    def bad_lines(self) -> int:
        """Lines the firmware's console counted as bad (over-long, or not an addressable command)."""
        return self.device.bad_lines

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
                self.det_cfg = DetectorConfig(**{f.name: gen_det[f.name] for f in fields(DetectorConfig)
                                                 if f.name in gen_det})
            self.detector = make_detector(self.det_cfg, so, zo)
            self.n_classes = int(self.model.out["shape"][-1])
            labels = self.image.meta.get("labels")
            self.labels = list(labels) if isinstance(labels, list) and len(labels) == self.n_classes \
                else [f"class_{i}" for i in range(self.n_classes)]
            self.log(f"model {self.image.model_sha256[:12]} ({len(self.image.model)} bytes), "
                     f"arena {self.arena()['size']} bytes in {self.arena()['where']}, core {self.pipeline.core}",
                     "model")
            self.device.hello()

    def hello_fields(self) -> dict[str, Any]:
        """What yf_hello_t carries (yf_core writes the frontend constants and src itself)."""
        if self.image is None or self.model is None:
            e = self.boot_error
            raise OpError("E_MODEL", e.msg if e else "no model loaded")
        si, zi, so, zo = self.quant
        arena = self.arena()
        mem = self.memory(arena)
        return {"fw": self.image.fw, "board": "sim", "model_sha256": self.image.model_sha256,
                "model_bytes": len(self.image.model), "labels": self.n_classes, "in_scale": si, "in_zp": zi,
                "out_scale": so, "out_zp": zo, "arena_size": arena["size"], "arena_used": arena["used"],
                "arena_where": arena["where"], "heap_free": mem["heap_free"], "psram_free": mem["psram_free"],
                "clock": "host"}

    def hello_extra(self) -> dict[str, Any]:
        """The virtual board's own hello/info members (docs/protocol.md)."""
        assert self.image is not None
        return {"mem": "nominal", "init_us": self.init_us, "core": self.pipeline.core,
                "build": self.image.meta.get("build")}

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
            self.device.feed(data)

    def _reboot(self) -> None:
        time.sleep(0.05)
        self.boot()

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
                self.stats()

    def stats(self) -> bytes:
        """Emit a stats line, written by yf_core as the firmware's console writes it."""
        arena = self.arena()
        mem = self.memory(arena)
        return self.device.stats(uptime_ms=self.ms(), inferences=self.inferences, dropped_samples=self.dropped,
                                 heap_free=mem["heap_free"], heap_min=mem["heap_free"],
                                 psram_free=mem["psram_free"], psram_min=mem["psram_free"],
                                 arena_size=arena["size"], arena_used=arena["used"], arena_where=arena["where"],
                                 patches_skipped=0)  # the sim infers every patch: a slow host drops samples


class _Ops(native.DeviceApp):
    """The firmware's ops (firmware/main/yf_commands.c) on the virtual board: yf_device decides, these act."""

    def __init__(self, vb: VirtualBoard):
        self.vb = vb

    def _model(self) -> Any:
        vb = self.vb
        if vb.model is None:
            e = vb.boot_error
            raise OpError("E_MODEL", e.msg if e else "no model loaded")
        return vb.model

    def emit(self, line: bytes) -> None:
        self.vb._write(line)

    def hello(self) -> dict[str, Any]:
        return self.vb.hello_fields()

    def extra(self, what: str) -> dict[str, Any]:
        if what == "stats":
            return {"tx_dropped": self.vb.tx_dropped, "clock": "host"}
        return self.vb.hello_extra()

    def source(self, src: str) -> None:
        vb = self.vb
        self._model()
        if src == "mic" and vb.mic_path is None:
            raise OpError("E_ARG", "this virtual board has no microphone (start it with --mic FILE)")
        with vb.plock:
            vb.src = src
            vb.ring.clear()
            vb.pipeline.reset()
            vb.detector = make_detector(vb.det_cfg, vb.quant[2], vb.quant[3])
            vb.stream_seq = {"scores": 0, "patch": 0}

    def pcm(self, pcm: np.ndarray) -> int:
        self._model()
        return self.vb.ring.put(pcm.astype(np.int16), block=True, timeout=5.0)

    def patch(self, req: native.PatchRequest) -> None:
        vb, model = self.vb, self._model()
        patch = req.q.reshape(96, 64)
        with vb.plock:
            t0 = time.perf_counter()
            out = np.asarray(model.run_int8(patch), np.int8)
            us = int((time.perf_counter() - t0) * 1e6)
            vb.last_patch = patch
        vb._write(native.Device.patch_reply(req, out, us))

    def stream(self, scores: bool, patches: bool) -> None:
        self.vb.stream_scores, self.vb.stream_patches = scores, patches

    def detector_get(self) -> tuple[DetectorConfig, int]:
        self._model()
        return DetectorConfig(**asdict(self.vb.det_cfg)), self.vb.n_classes

    def detector_set(self, settings: DetectorConfig) -> None:
        vb = self.vb
        with vb.plock:
            vb.det_cfg = settings
            vb.detector = make_detector(settings, vb.quant[2], vb.quant[3])

    def bench(self, id: int, n: int) -> None:
        vb, model = self.vb, self._model()
        patch = vb.last_patch if vb.last_patch is not None else np.zeros((96, 64), np.int8)
        times = []
        with vb.plock:
            for _ in range(n):
                t0 = time.perf_counter()
                model.run_int8(patch)
                times.append(round((time.perf_counter() - t0) * 1e6))
        vb._write(native.Device.bench_reply(id, times, clock="host"))

    def reset(self) -> None:
        threading.Thread(target=self.vb._reboot, daemon=True).start()
