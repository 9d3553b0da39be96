"""YAMNet's log-mel frontend in numpy, exactly as YAMNet was trained (see DESIGN.md, "The frontend").

16 kHz mono; 400-sample frames every 160 samples; periodic Hann; 512-point real FFT; magnitude;
the 64-band mel matrix of ``tf.signal.linear_to_mel_weight_matrix(64, 257, 16000, 125, 7500)``;
``log(mel + 0.001)``; patches of 96 frames every 48 frames. The firmware's C core implements the same
definition and is tested against this module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class FrontendParams:
    sample_rate: int = 16000
    frame_length: int = 400
    frame_step: int = 160
    fft_length: int = 512
    num_mel_bins: int = 64
    lower_edge_hertz: float = 125.0
    upper_edge_hertz: float = 7500.0
    log_offset: float = 0.001
    patch_frames: int = 96
    patch_hop_frames: int = 48

    @property
    def num_spectrogram_bins(self) -> int:
        return self.fft_length // 2 + 1

    @property
    def patch_samples(self) -> int:
        """Samples that make the first patch: 15600 (0.975 s)."""
        return (self.patch_frames - 1) * self.frame_step + self.frame_length

    @property
    def patch_hop_samples(self) -> int:
        return self.patch_hop_frames * self.frame_step

    def to_dict(self) -> dict:
        return asdict(self)


PARAMS = FrontendParams()


def periodic_hann(n: int) -> np.ndarray:
    """Periodic Hann window (divides by N, not N-1), as ``tf.signal.hann_window(n, periodic=True)``."""
    k = np.arange(n, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * k / n)).astype(np.float32)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    # HTK mel scale with TensorFlow's constants (_MEL_BREAK_FREQUENCY_HERTZ, _MEL_HIGH_FREQUENCY_Q).
    return 1127.0 * np.log1p(hz / 700.0)


def mel_matrix(p: FrontendParams = PARAMS) -> np.ndarray:
    """[257, 64] float32 mel weights, computed as ``tf.signal.linear_to_mel_weight_matrix`` does.

    TensorFlow computes this in float32; so do we, step by step, so the tables match bit for bit
    as closely as float32 allows. Triangles are linear in mel; the DC bin is zero.
    """
    f32 = np.float32
    nyquist = f32(p.sample_rate / 2.0)
    bins = p.num_spectrogram_bins
    linear = np.linspace(f32(0.0), nyquist, bins, dtype=np.float32)[1:]
    spec_mel = _hz_to_mel(linear.astype(np.float32)).astype(np.float32)[:, None]
    edges = np.linspace(
        _hz_to_mel(np.float32(p.lower_edge_hertz)).astype(np.float32),
        _hz_to_mel(np.float32(p.upper_edge_hertz)).astype(np.float32),
        p.num_mel_bins + 2,
        dtype=np.float32,
    )
    lower, center, upper = edges[:-2][None, :], edges[1:-1][None, :], edges[2:][None, :]
    lower_slopes = (spec_mel - lower) / (center - lower)
    upper_slopes = (upper - spec_mel) / (upper - center)
    weights = np.maximum(f32(0.0), np.minimum(lower_slopes, upper_slopes)).astype(np.float32)
    return np.concatenate([np.zeros((1, p.num_mel_bins), np.float32), weights], axis=0)


def sparse_mel(p: FrontendParams = PARAMS) -> list[tuple[int, np.ndarray]]:
    """Each band as (first FFT bin, weights of its non-zero run): the form the firmware stores."""
    m = mel_matrix(p)
    bands = []
    for j in range(p.num_mel_bins):
        nz = np.nonzero(m[:, j])[0]
        first, last = int(nz[0]), int(nz[-1])
        bands.append((first, m[first : last + 1, j].copy()))
    return bands


def frames(waveform: np.ndarray, p: FrontendParams = PARAMS) -> np.ndarray:
    """Frame a float waveform into [n, 400] without padding (tf.signal.stft with pad_end=False)."""
    x = np.asarray(waveform, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError("waveform must be 1-D mono")
    n = 0 if len(x) < p.frame_length else 1 + (len(x) - p.frame_length) // p.frame_step
    idx = np.arange(p.frame_length)[None, :] + p.frame_step * np.arange(n)[:, None]
    return x[idx] if n else np.zeros((0, p.frame_length), np.float32)


def log_mel(waveform: np.ndarray, p: FrontendParams = PARAMS) -> np.ndarray:
    """Log-mel spectrogram [n_frames, 64] of a float32 waveform in [-1, 1]."""
    fr = frames(waveform, p) * periodic_hann(p.frame_length)[None, :]
    mag = np.abs(np.fft.rfft(fr.astype(np.float64), n=p.fft_length, axis=1)).astype(np.float32)
    mel = mag @ mel_matrix(p)
    return np.log(mel + np.float32(p.log_offset)).astype(np.float32)


def pad_waveform(waveform: np.ndarray, p: FrontendParams = PARAMS) -> np.ndarray:
    """Zero-pad as YAMNet does: to at least one patch, then to a whole number of patch hops."""
    x = np.asarray(waveform, dtype=np.float32)
    n = max(len(x), p.patch_samples)
    hops = -(-(n - p.patch_samples) // p.patch_hop_samples)
    total = p.patch_samples + hops * p.patch_hop_samples
    return np.pad(x, (0, total - len(x)))


def patches(spectrogram: np.ndarray, p: FrontendParams = PARAMS) -> np.ndarray:
    """Cut a log-mel spectrogram into [n, 96, 64] patches every 48 frames (tf.signal.frame)."""
    s = np.asarray(spectrogram, dtype=np.float32)
    if len(s) < p.patch_frames:
        return np.zeros((0, p.patch_frames, p.num_mel_bins), np.float32)
    n = 1 + (len(s) - p.patch_frames) // p.patch_hop_frames
    return np.stack([s[i * p.patch_hop_frames : i * p.patch_hop_frames + p.patch_frames] for i in range(n)])


def waveform_to_patches(waveform: np.ndarray, p: FrontendParams = PARAMS) -> np.ndarray:
    """YAMNet's own path from a clip to its patches: pad, log-mel, frame into patches."""
    return patches(log_mel(pad_waveform(waveform, p), p), p)


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float to int8 as TFLite's QUANTIZE op does: round half away from zero, then clamp.

    The C core uses the same rounding (yf_quant.c); both are tested against the same vectors.
    """
    q = np.asarray(x, np.float32) / np.float32(scale)
    q = np.sign(q) * np.floor(np.abs(q) + np.float32(0.5)) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (np.asarray(q, np.float32) - np.float32(zero_point)) * np.float32(scale)
