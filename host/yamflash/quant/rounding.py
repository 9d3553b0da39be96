"""Weight rounding optimisation: choose each int8 weight's rounding (and each channel's clip) by layer output error.

Nearest rounding is optimal per weight, not per layer: the errors of one output channel's weights add up
over the inputs they multiply, and correlated inputs let rounding errors cancel or pile up. Per layer this
module minimises, for every output channel c with int8 weights q_c and step s_c,

    E_c(q_c) = sum over calibration rows || x_hat . (s_c q_c) - x . w_c ||^2

where x are the layer's inputs in the float network and x_hat the same inputs in the quantized network
(everything upstream already quantized, rounding of the upstream layers already optimised), so the layer
also soaks up part of the error that reaches it. E_c is a quadratic in q_c with the Gram matrix
A = x_hat^T x_hat (shared by the output channels of a convolution, one 9x9 per channel of a depthwise
convolution): integer coordinate descent on it (each weight in turn moves to the integer nearest its 1-D
optimum, inside its allowed set) can only lower E_c. Allowed sets: floor/ceil of w / s (AdaRound's set),
or any of -127..127 (``span="full"``).

Channel clipping: per output channel, the step s_c = alpha max|w_c| / 127 with alpha from ``clip_grid``,
chosen by E_c after nearest rounding; the channel's largest weight then sits at +-127 exactly.

Grid: the result is float weights s_c q_c with, per channel, one weight at +-127 held fixed, so
TensorFlow's converter (step = max|w| / 127 per output channel) recovers exactly q_c and s_c.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..model.weights import YamnetWeights
from .simulate import EMBEDDING_T, layer_plan, relu_fn

QMAX = 127


def channel_view(k: np.ndarray, kind: str) -> np.ndarray:
    """Kernel as [in, out] (conv, pw, fc) or [9, C] (depthwise): one column per int8 scale."""
    if kind == "dw":
        return k[:, :, :, 0].reshape(-1, k.shape[2])
    return k.reshape(-1, k.shape[-1])


def from_channel_view(m: np.ndarray, shape: tuple[int, ...], kind: str) -> np.ndarray:
    if kind == "dw":
        return m.reshape(shape[0], shape[1], shape[2])[..., None].astype(np.float32)
    return m.reshape(shape).astype(np.float32)


def grid_steps(w: np.ndarray) -> np.ndarray:
    """Per column, the step TensorFlow's converter picks: max|w| / 127."""
    return np.maximum(np.abs(w).max(0), 1e-12) / QMAX


def objective(A: np.ndarray, b: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per column, q^T A q - 2 q^T b (E_c / s_c^2 up to a constant). A [n, n] shared or [C, n, n]."""
    if A.ndim == 2:
        return np.einsum("ic,ic->c", q, A @ q) - 2 * np.einsum("ic,ic->c", q, b)
    return np.einsum("ci,cij,cj->c", q.T, A, q.T) - 2 * np.einsum("ic,ic->c", q, b)


def coordinate_descent(A: np.ndarray, b: np.ndarray, q0: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                       sweeps: int = 3) -> np.ndarray:
    """Integer coordinate descent on q^T A q - 2 q^T b per column, q in [lo, hi] elementwise.

    ``A``: [n, n] shared by all columns, or [C, n, n] one per column; b, q0, lo, hi: [n, C]; lo <= q0 <= hi.
    Every accepted move lowers (or keeps) the objective of its column.
    """
    q = q0.astype(np.float64).copy()
    shared = A.ndim == 2
    g = (A @ q if shared else np.einsum("cij,jc->ic", A, q)) - b  # half the gradient
    diag = np.diagonal(A) if shared else np.diagonal(A, axis1=1, axis2=2).T  # [n] or [n, C]
    n = q.shape[0]
    for _ in range(sweeps):
        moved = 0
        for i in range(n):
            d_ii = np.maximum(diag[i], 1e-30)
            step = np.rint(-g[i] / d_ii)
            step = np.clip(step, lo[i] - q[i], hi[i] - q[i])
            nz = step != 0
            if not np.any(nz):
                continue
            moved += int(nz.sum())
            q[i] += step
            if shared:
                g += np.outer(A[:, i], step)
            else:
                g += A[:, :, i].T * step[None, :]
        if moved == 0:
            break
    return q


def optimise_columns(w: np.ndarray, A: np.ndarray, B: np.ndarray, span: str = "floorceil",
                     clip_grid: tuple[float, ...] = (1.0,), sweeps: int = 3,
                     yy: np.ndarray | float = 0.0) -> tuple[np.ndarray, dict[str, Any]]:
    """Int8-grid weights for float columns ``w`` [n, C] minimising ||x_hat . w_q - y||^2 per column.

    ``A`` = x_hat^T x_hat ([n, n] or [C, n, n]), ``B`` = x_hat^T y [n, C] with y the float outputs.
    ``yy``: per column sum of y^2 (only makes the reported errors absolute).
    Returns (s * q as float32 [n, C], info). Never worse in the objective than nearest rounding at alpha 1.
    """
    w = w.astype(np.float64)
    A = A.astype(np.float64)
    B = B.astype(np.float64)
    s0 = grid_steps(w)
    n, C = w.shape
    best_obj = np.full(C, np.inf)
    best_q = np.zeros_like(w)
    best_s = s0.copy()
    cols = np.arange(C)
    for alpha in clip_grid:
        s = s0 * alpha
        v = w / s
        qn = np.clip(np.rint(v), -QMAX, QMAX)
        pin = np.abs(v).argmax(0)  # the weight that fixes the converter's step: stays at +-127
        qn[pin, cols] = np.sign(v[pin, cols]) * QMAX
        obj = objective(A, B / s, qn) * s**2
        better = obj < best_obj
        best_obj[better], best_q[:, better], best_s[better] = obj[better], qn[:, better], s[better]
    start = best_obj.copy()
    v = w / best_s
    pin = np.abs(v).argmax(0)
    if span == "full":
        lo, hi = np.full_like(v, -QMAX), np.full_like(v, QMAX)
    else:
        lo, hi = np.clip(np.floor(v), -QMAX, QMAX), np.clip(np.ceil(v), -QMAX, QMAX)
    lo = np.minimum(lo, best_q)
    hi = np.maximum(hi, best_q)
    lo[pin, cols] = hi[pin, cols] = best_q[pin, cols]
    q = coordinate_descent(A, B / best_s, best_q, lo, hi, sweeps) if sweeps else best_q
    end = objective(A, B / best_s, q) * best_s**2
    nearest = objective(A, B / s0, np.clip(np.rint(w / s0), -QMAX, QMAX)) * s0**2
    yt = float(np.sum(yy))
    info = {"nearest": float(nearest.sum()) + yt, "clipped": float(start.sum()) + yt,
            "optimised": float(end.sum()) + yt,
            "alpha_mean": float(np.mean(best_s / s0)), "changed": float(np.mean(q != np.rint(w / s0)))}
    return (q * best_s).astype(np.float32), info


def _patches(tf: Any, x: Any, stride: int) -> Any:
    return tf.image.extract_patches(x, [1, 3, 3, 1], [1, stride, stride, 1], [1, 1, 1, 1], "SAME")


def optimise_rounding(weights: YamnetWeights, ranges: np.ndarray, patches: np.ndarray,
                      log: Callable[[str], None] = print, span: str = "floorceil",
                      clip_grid: tuple[float, ...] = (1.0,), sweeps: int = 3, target: str = "float",
                      max_rows: int = 60000, batch: int = 50, seed: int = 0,
                      layers: set[str] | None = None) -> tuple[YamnetWeights, dict[str, Any]]:
    """Layer by layer, from the input: weights on the int8 grid chosen as in ``optimise_columns``.

    ``target``: "float" (match the float network's layer output from the quantized input: also corrects
    upstream error) or "quant" (match the unrounded layer on the same quantized input). ``ranges``: the
    recipe's activation ranges [30, 2]; ``layers``: names to optimise (others get nearest rounding).
    """
    import tensorflow as tf

    from .equalize import copy_weights

    rng = np.random.default_rng(seed)
    plan = layer_plan()
    out = copy_weights(weights)
    r = tf.constant(np.asarray(ranges, np.float32))

    def fq(x: Any, t: int) -> Any:
        if ranges[t, 1] <= ranges[t, 0]:  # as in quant_sim: an empty range leaves the tensor in float
            return x
        return tf.quantization.fake_quant_with_min_max_vars(x, r[t, 0], r[t, 1], num_bits=8)

    xs = [(fq(tf.constant(patches[i:i + batch], tf.float32), 0)[..., None],
           tf.constant(patches[i:i + batch], tf.float32)[..., None]) for i in range(0, len(patches), batch)]
    info: dict[str, Any] = {}
    for li, (name, kind, stride) in enumerate(plan):
        k = weights.kernels[name]
        bias = weights.biases[name]
        wv = channel_view(k, kind)
        if kind == "fc":
            xs = [(fq(tf.reduce_mean(xq, axis=[1, 2]), EMBEDDING_T), tf.reduce_mean(xf, axis=[1, 2]))
                  for xq, xf in xs]
        # Gram statistics from a row sample of every batch
        n_in = wv.shape[0]
        A = np.zeros((wv.shape[1], 9, 9) if kind == "dw" else (n_in, n_in))
        Bm = np.zeros_like(wv, dtype=np.float64)
        yy = np.zeros(wv.shape[1])
        for xq, xf in xs:
            if kind in ("conv", "dw"):
                pq, pf = _patches(tf, xq, stride).numpy(), _patches(tf, xf, stride).numpy()
            else:
                pq, pf = xq.numpy(), xf.numpy()
            if kind == "dw":
                c = k.shape[2]
                pq, pf = pq.reshape(-1, 9, c), pf.reshape(-1, 9, c)
            else:
                pq, pf = pq.reshape(-1, pq.shape[-1]), pf.reshape(-1, pf.shape[-1])
            keep = max(1, max_rows // len(xs))
            if len(pq) > keep:
                idx = rng.choice(len(pq), keep, replace=False)
                pq, pf = pq[idx], pf[idx]
            pq64, pf64 = pq.astype(np.float64), pf.astype(np.float64)
            src = pf64 if target == "float" else pq64
            if kind == "dw":
                A += np.einsum("nic,njc->cij", pq64, pq64)
                y = np.einsum("nic,ic->nc", src, wv.astype(np.float64))
                Bm += np.einsum("nic,nc->ic", pq64, y)
            else:
                A += pq64.T @ pq64
                y = src @ wv.astype(np.float64)
                Bm += pq64.T @ y
            yy += np.sum(y * y, axis=0)
        if layers is None or name in layers:
            wq, inf = optimise_columns(wv, A, Bm, span, clip_grid, sweeps, yy)
        else:
            wq, inf = optimise_columns(wv, A, Bm, "floorceil", (1.0,), 0, yy)
        info[name] = inf
        out.kernels[name] = from_channel_view(wq, k.shape, kind)
        gain = 1 - inf["optimised"] / max(inf["nearest"], 1e-30)
        log(f"rounding {name}: output error -{100 * gain:.1f} % vs nearest, {100 * inf['changed']:.1f} % "
            f"of weights moved, mean clip {inf['alpha_mean']:.3f}")
        if kind == "fc":
            break
        # advance both chains through this layer
        kq = tf.constant(out.kernels[name])
        kf = tf.constant(k)
        b = tf.constant(bias)

        def step(x: Any, kern: Any, kind: str = kind, stride: int = stride, b: Any = b) -> Any:
            relu = relu_fn(tf, weights.activation)
            if kind == "dw":
                return relu(tf.nn.depthwise_conv2d(x, kern, [1, stride, stride, 1], "SAME") + b)
            return relu(tf.nn.conv2d(x, kern, stride, "SAME") + b)

        xs = [(fq(step(xq, kq), li + 1), step(xf, kf)) for xq, xf in xs]
    return out, info


def grid_mismatch(tflite: bytes, weights: YamnetWeights) -> tuple[int, float]:
    """Compare a converted model's int8 weights with ``weights`` (assumed on the int8 grid).

    Returns (how many int8 weights differ from round(w / (max|w| / 127)) per output channel, the largest
    relative difference between the model's weight scales and max|w| / 127). (0, ~1e-7) means the
    converter kept exactly the optimised integers.
    """
    from ..model.tflite_fb import FlatModel
    from .flatbuffer import graph_tensors

    fm = FlatModel(tflite)
    _, weighted = graph_tensors(fm)
    bad, worst = 0, 0.0
    for op, (name, kind, _) in zip(weighted, layer_plan(), strict=True):
        raw = np.frombuffer(fm.tensor_bytes(op.inputs[1]), np.int8).reshape(fm.tensor_shape(op.inputs[1]))
        wv = channel_view(weights.kernels[name], kind)
        s = grid_steps(wv.astype(np.float64))
        want = np.rint(wv / s).astype(np.int64)
        if kind == "dw":  # 1HWC
            got = raw[0].reshape(-1, raw.shape[-1])
        elif kind == "fc":  # [out, in]
            got = raw.T
        else:  # OHWI
            got = raw.reshape(raw.shape[0], -1).T
        bad += int(np.sum(got.astype(np.int64) != want))
        scales = fm.quantization(op.inputs[1])[0].astype(np.float64)
        live = np.abs(wv).max(0) > 0  # an all-zero channel has no meaningful step
        if np.any(live):
            worst = max(worst, float(np.max(np.abs(scales[live] / s[live] - 1))))
    return bad, worst
