"""The virtual board's audio path: PCM -> frontend -> patcher -> quantizer -> TFLM -> detector.

On the chip these stages are yf_core (C) plus TFLite Micro with ESP-NN. Here the same yf_core runs
through ``yamflash.target.native`` (ctypes), and TFLite Micro's reference kernels through ``yamflash.model.tflm``, so
what the virtual board reports is what the firmware's code computes, only on a different CPU.
Until the native binding is available the stages fall back to the numpy reference (``frontend.py``),
and the hello says so in its ``core`` field.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...frontend import PARAMS, dequantize, log_mel, quantize
from ...protocol_spec import DetectorSettings as DetectorConfig  # the detector's limits and defaults: the protocol spec

PATCH_HOP_MS = 480
PATCH_MS = 975


@dataclass
class Patch:
    index: int
    q: np.ndarray  # int8 [96, 64]
    frontend_us: float  # mean per frame over the frames that completed this patch
    last_sample_t: float  # monotonic time the last sample of this patch entered the pipeline


class _ReferenceStages:
    """numpy stand-in for yf_core's frontend + patcher + detector (used only without the native library)."""

    name = "numpy-reference"

    def __init__(self, scale: float, zp: int):
        self.scale, self.zp = scale, zp
        self.pending = np.zeros(0, np.int16)
        self.frames: deque[np.ndarray] = deque(maxlen=PARAMS.patch_frames)
        self.n_frames = 0

    def push(self, pcm: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Returns (int8 patch, frontend seconds per frame) for every patch completed by ``pcm``."""
        out = []
        self.pending = np.concatenate([self.pending, pcm])
        win, hop = PARAMS.frame_length, PARAMS.frame_step
        t_fe, n_fe = 0.0, 0
        while len(self.pending) >= win:
            t0 = time.perf_counter()
            frame = log_mel(self.pending[:win].astype(np.float32) / np.float32(32768.0))[0]
            t_fe += time.perf_counter() - t0
            n_fe += 1
            self.pending = self.pending[hop:]
            self.frames.append(frame)
            self.n_frames += 1
            since = self.n_frames - PARAMS.patch_frames
            if since >= 0 and since % PARAMS.patch_hop_frames == 0:
                out.append((quantize(np.stack(self.frames), self.scale, self.zp), t_fe / max(n_fe, 1)))
                t_fe, n_fe = 0.0, 0
        return out


class _ReferenceDetector:
    """Mirror of yf_detect.h's rules (window mean >= threshold for min_count patches, refractory in audio ms)."""

    def __init__(self, cfg: DetectorConfig, out_scale: float, out_zp: int):
        self.cfg, self.scale, self.zp = cfg, out_scale, out_zp
        self.hist: dict[int, deque[float]] = {c: deque(maxlen=cfg.window) for c in cfg.classes}
        self.run = dict.fromkeys(cfg.classes, 0)
        self.quiet_until = dict.fromkeys(cfg.classes, 0)

    def push(self, q: np.ndarray, patch: int) -> list[tuple[int, float, int]]:
        scores = dequantize(q, self.scale, self.zp)
        ts = patch * PATCH_HOP_MS + PATCH_MS
        events = []
        for c in self.cfg.classes:
            h = self.hist[c]
            h.append(float(scores[c]))
            if len(h) < self.cfg.window:
                continue
            mean = float(np.float32(sum(h) / len(h)))
            self.run[c] = self.run[c] + 1 if mean >= self.cfg.threshold else 0
            if self.run[c] >= self.cfg.min_count and ts >= self.quiet_until[c]:
                events.append((c, mean, ts))
                self.run[c] = 0
                self.quiet_until[c] = ts + self.cfg.refractory_ms
        return events


def _native() -> Any:
    try:
        from ...target import native  # type: ignore[attr-defined]
    except Exception:  # absent or its library not built: the reference stages stand in
        return None
    return native


class Pipeline:
    """Streaming audio in, finished patches out; owns the frontend state and the patch counter."""

    def __init__(self, in_scale: float, in_zp: int):
        self.in_scale, self.in_zp = in_scale, in_zp
        self.patches = 0
        self.stages = self._make()

    def _make(self) -> Any:
        nat = _native()
        if nat is not None and hasattr(nat, "Frontend") and hasattr(nat, "Patcher"):
            return _NativeStages(nat, self.in_scale, self.in_zp)
        return _ReferenceStages(self.in_scale, self.in_zp)

    @property
    def core(self) -> str:
        return str(self.stages.name)

    def reset(self) -> None:
        self.patches = 0
        self.stages = self._make()

    def push(self, pcm: np.ndarray, t_last: float) -> list[Patch]:
        out = []
        for q, fe_s in self.stages.push(np.asarray(pcm, np.int16)):
            out.append(Patch(self.patches, q.reshape(96, 64), fe_s * 1e6, t_last))
            self.patches += 1
        return out


class _NativeStages:
    """yf_core's frontend, patcher and quantizer through ctypes (see yamflash.target.native)."""

    name = "yf_core"

    def __init__(self, nat: Any, scale: float, zp: int):
        self.fe = nat.Frontend()
        self.patcher = nat.Patcher()
        self.scale, self.zp = scale, zp

    def push(self, pcm: np.ndarray) -> list[tuple[np.ndarray, float]]:
        out = []
        t0 = time.perf_counter()
        frames = self.fe.push(pcm)
        per_frame = (time.perf_counter() - t0) / max(len(frames), 1)
        for f in frames:
            if self.patcher.push(f):
                out.append((self.patcher.quantize(self.scale, self.zp), per_frame))
        return out


def make_detector(cfg: DetectorConfig, out_scale: float, out_zp: int) -> Any:
    nat = _native()
    if nat is not None and hasattr(nat, "Detector"):
        return nat.Detector(cfg.classes, cfg.threshold, cfg.window, cfg.min_count, cfg.refractory_ms,
                            out_scale, out_zp)
    return _ReferenceDetector(cfg, out_scale, out_zp)
