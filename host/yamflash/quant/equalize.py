"""Per-channel rescaling of YAMNet's activations that leaves the float function unchanged.

ReLU is positively homogeneous, so multiplying channel c of an activation tensor by f_c > 0 (producer's
output weights and bias times f_c) and dividing the consumer's input weights for that channel by f_c
computes the same scores. INT8 has one scale per activation tensor; YAMNet's deep tensors mix a few
huge channels with many tiny ones, and rescaling them to similar ranges lets that one scale fit all.
When the consumer is a depthwise convolution (per-channel weights) the rescale costs nothing; when it
is a pointwise convolution or the classifier, its weight rows shrink or grow, hence the trade-off
exponent in ``equalization_factors``.
"""

from __future__ import annotations

import numpy as np

from ..model.weights import YamnetWeights
from .simulate import EMBEDDING_T, N_CONV, layer_plan


def copy_weights(w: YamnetWeights) -> YamnetWeights:
    return YamnetWeights({k: v.copy() for k, v in w.kernels.items()},
                         {k: v.copy() for k, v in w.biases.items()}, w.activation, dict(w.source))


def scale_channels(w: YamnetWeights, tensor: int, f: np.ndarray) -> None:
    """In place: activation tensor ``tensor`` (1..27) becomes f * itself; the network output is unchanged.

    Scaling the last convolution's output scales the embedding (a mean) the same way, so the
    classifier absorbs it.
    """
    if not 1 <= tensor <= N_CONV:
        raise ValueError(f"tensor {tensor} is not a convolution output (1..{N_CONV})")
    if np.any(f <= 0) or not np.all(np.isfinite(f)):
        raise ValueError("channel factors must be positive and finite (ReLU is only positively homogeneous)")
    if w.activation != "relu":
        raise ValueError("equalization needs plain ReLU; ReLU6's cap does not commute with scaling")
    plan = layer_plan()
    prod, pkind, _ = plan[tensor - 1]
    cons, ckind, _ = plan[tensor]
    f = f.astype(np.float32)
    if pkind == "dw":
        w.kernels[prod] = w.kernels[prod] * f[None, None, :, None]
    else:
        w.kernels[prod] = w.kernels[prod] * f
    w.biases[prod] = w.biases[prod] * f
    if ckind == "dw" or ckind == "pw":
        w.kernels[cons] = w.kernels[cons] / f[None, None, :, None]
    else:  # fc: kernel [in, out]
        w.kernels[cons] = w.kernels[cons] / f[:, None]


def consumer_row_range(w: YamnetWeights, tensor: int) -> np.ndarray | None:
    """For a tensor read by a pointwise conv or the classifier: each input channel's weight row, relative
    to the per-output-channel weight scale it is quantized with. None for depthwise consumers (free)."""
    plan = layer_plan()
    cons, ckind, _ = plan[tensor]
    if ckind == "dw":
        return None
    k = w.kernels[cons].reshape(-1, w.kernels[cons].shape[-1])  # [in, out]
    col = np.maximum(np.abs(k).max(0), 1e-12)
    return np.abs(k / col).max(1)


def equalization_factors(ch_range: np.ndarray, row_range: np.ndarray | None, alpha: float,
                         max_gain: float = 64.0) -> np.ndarray:
    """Factors that bring the channel ranges together; dead channels keep factor 1.

    With a free consumer every channel goes to the tensor's median live range (alpha ignored). With a
    weighted consumer g_c = r_c^-alpha * w_c^(1 - alpha), w_c the channel's relative weight row: alpha 0.5
    is classic cross-layer equalization (balance activation and weight ranges), alpha 1 ignores weights.
    """
    live = ch_range > 1e-6 * max(float(ch_range.max()), 1e-30)
    f = np.ones_like(ch_range, dtype=np.float64)
    if not np.any(live):
        return f.astype(np.float32)
    r = ch_range[live].astype(np.float64)
    if row_range is None:
        g = 1.0 / r
    else:
        g = r ** -alpha * np.maximum(row_range[live].astype(np.float64), 1e-12) ** (1.0 - alpha)
    g *= np.median(r) / np.median(r * g)
    f[live] = np.clip(g, 1.0 / max_gain, max_gain)
    return f.astype(np.float32)


def tensors_scaled() -> list[int]:
    """All convolution outputs; the embedding follows the last one."""
    assert EMBEDDING_T == N_CONV + 1
    return list(range(1, N_CONV + 1))
