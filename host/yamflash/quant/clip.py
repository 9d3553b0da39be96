"""Per-channel clipping of the tensors a depthwise convolution reads, chosen by the depthwise output's error.

An int8 activation tensor has one scale, but a channel read by a depthwise convolution can be rescaled for free:
multiplying channel c by a_c > 0 (its producer's output weights and bias times a_c) and dividing the depthwise
filter of channel c by a_c keeps the float function (ReLU is positively homogeneous), and both sides keep their
int8 weights exactly (per-output-channel weight scales absorb a_c). With the tensor's range fixed, a_c > 1
clips channel c harder and gives its small values a finer step; a_c < 1 does the opposite. So each such
tensor in effect gets a clip per channel.

Equalization (``equalize``) sets every channel to the same maximum. That is the wrong goal where a depthwise
output is a small residual of large cancelling terms, as in yamnet.h5's layer 13 (pre-activation down to -15,
outputs under 0.6): there the values below one int8 step carry the signal and clipping the rare large ones
costs little. Because a depthwise convolution keeps channels apart, the best a_c can be found channel by
channel: for a grid of factors, the error of the ReLU'd depthwise output (quantized input, rounded weights)
against the float network's, summed over calibration patches; the grid contains 1, so no channel gets worse
on them. Tensors are done from the input down, each on the quantized chain the previous choices give.

Measured (yamnet.h5 weights, scripts/bench_convert.py, TFLite Micro, 780 held-out patches): the recipe ``eq-clip``
in ``recipes`` reaches top-1 0.891 / cosine 0.989 against eq-round's 0.846 / 0.974 in the same run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..model.weights import YamnetWeights
from ..progress import Steps
from .equalize import scale_channels
from .simulate import N_CONV, QuantSpec, Simulator, layer_plan

FACTORS = tuple(float(2.0 ** (k / 2)) for k in range(-8, 17))  # 1/16 .. 256, includes 1
POSITIONS = 100_000  # rows per tensor: enough for one factor per channel; bounds the big early layers' cost


def positions(t: int) -> int:
    """Spatial positions of activation tensor ``t`` (1..27) for one 96 x 64 patch."""
    h, w = 96, 64
    for _, _, stride in layer_plan()[:t]:
        h, w = -(-h // stride), -(-w // stride)
    return h * w


def depthwise_inputs() -> list[int]:
    """Activation tensors read by a depthwise convolution: the first conv's and every pointwise output but the
    last (1, 3, ..., 25); the last one feeds the mean and the classifier, whose weights a rescale would move."""
    plan = layer_plan()
    return [t for t in range(1, N_CONV + 1) if plan[t][1] == "dw"]


def channel_errors(sim_q: Simulator, sim_f: Simulator, ranges: np.ndarray, t: int, kernel: np.ndarray,
                   bias: np.ndarray, stride: int, patches: np.ndarray,
                   factors: tuple[float, ...] = FACTORS) -> np.ndarray:
    """[len(factors), C]: per factor and channel, the summed squared error of the depthwise consumer's ReLU
    output when tensor ``t`` is quantized as channel x factor on its range, against the float network."""
    tf = sim_q.tf
    lo, hi = float(ranges[t, 0]), float(ranges[t, 1])
    step = (hi - lo) / 255.0
    k = tf.constant(kernel, tf.float32)
    b = tf.constant(bias, tf.float32)
    err = np.zeros((len(factors), kernel.shape[2]), np.float64)
    relu = tf.nn.relu6 if sim_q.relu6 else tf.nn.relu
    pairs = zip(sim_q.activations(patches, QuantSpec(ranges), [t]), sim_f.activations(patches, None, [t + 1]),
                strict=True)
    for (yq,), (zf,) in pairs:
        y = tf.constant(yq, tf.float32)
        for i, a in enumerate(factors):
            q = tf.clip_by_value(tf.round(y * (a / step)) * step, lo, hi) / a
            zq = relu(tf.nn.depthwise_conv2d(q, k, [1, stride, stride, 1], "SAME") + b).numpy()
            d = zq.astype(np.float64) - zf.astype(np.float64)  # float64 sums: same choice for any thread count
            err[i] += np.einsum("nhwc,nhwc->c", d, d)
    return err


def clip_channels(weights: YamnetWeights, float_weights: YamnetWeights, ranges: np.ndarray, patches: np.ndarray,
                  log: Callable[[str], None] = print, factors: tuple[float, ...] = FACTORS,
                  tensors: list[int] | None = None, batch: int = 50) -> tuple[YamnetWeights, dict[str, Any]]:
    """Return a copy of ``weights`` (rounded, equalized) with every depthwise input's channels rescaled to the
    factor that minimises ``channel_errors``, and a description. ``float_weights``: the float network (any
    equivalent rescaling of it: only its depthwise outputs are used)."""
    from .equalize import copy_weights

    if weights.activation != "relu":
        raise ValueError("per-channel clipping rescales channels, which needs plain ReLU")
    w = copy_weights(weights)
    plan = layer_plan()
    sim_f = Simulator(float_weights, batch=batch)
    one = factors.index(1.0)
    chosen: dict[str, Any] = {}
    todo = depthwise_inputs() if tensors is None else tensors
    steps = Steps("per-channel clip search (tensor)", len(todo))
    for t in todo:
        name, kind, stride = plan[t]
        assert kind == "dw"
        n = min(len(patches), max(batch, POSITIONS // positions(t)))  # a prefix: patches are a seeded draw
        err = channel_errors(Simulator(w, batch=batch), sim_f, ranges, t, w.kernels[name], w.biases[name], stride,
                             patches[:n], factors)
        best = err.argmin(0)
        picked = err[best, np.arange(err.shape[1])].sum()
        a = np.asarray([factors[i] for i in best], np.float32)
        scale_channels(w, t, a)
        chosen[str(t)] = {"patches": int(n), "error_ratio": round(float(picked / max(err[one].sum(), 1e-30)), 4),
                          "factor_median": float(np.median(a)), "factor_min": float(a.min()),
                          "factor_max": float(a.max())}
        steps.advance()
    steps.close()
    log("per-channel clips: depthwise-output error vs equalized " +
        ", ".join(f"t{t} x{v['error_ratio']:.2f}" for t, v in chosen.items()))
    return w, {"objective": "ReLU'd depthwise output error vs float, per channel", "patches": int(len(patches)),
               "factors": [round(f, 4) for f in factors], "tensors": chosen}
