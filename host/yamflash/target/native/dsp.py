"""yf_core's frontend, patcher, quantizer and detector through ctypes: the chip's DSP, run on the host."""

from __future__ import annotations

import ctypes as C

import numpy as np

from ...protocol_spec import DetectorSettings
from .binding import (
    DETECT_MAX_CLASSES,
    FRAME_HOP,
    FRAME_LEN,
    NUM_MEL,
    PATCH_FRAMES,
    DetectConfig,
    DetEvent,
    FrontendConfig,
    _Opaque,
    _ptr,
    lib,
)


def mel_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first bin, length, weights) of the 64 bands, as the generated header stores them."""
    from ...frontend import sparse_mel

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
