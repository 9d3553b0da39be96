"""YAMNet as plain TensorFlow ops with optional fake quantization: the INT8 model simulated in float.

TFLite Micro runs ~65 ms per patch; the recipe needs thousands of forward passes to pick ranges and to
fine-tune, so it works on this batched simulation instead. It quantizes exactly where the converted
model does (per-channel symmetric int8 weights, one asymmetric int8 range per activation tensor, the
int8 logits and the 1/256 sigmoid output), so its scores track TFLite Micro's closely.

Activation tensors are numbered in graph order: 0 is the input patch, 1..27 the ReLU outputs of the
27 convolutions (``layer_names()[k - 1]`` produces tensor k), 28 the embedding (mean over time and
frequency) and 29 the logits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..model.weights import LAYER_DEFS, YamnetWeights, layer_names

N_CONV = 27
EMBEDDING_T = 28
LOGITS_T = 29
N_TENSORS = 30


def layer_plan() -> list[tuple[str, str, int]]:
    """(layer name, kind "conv" | "dw" | "pw" | "fc", stride) in graph order."""
    plan = [("layer1/conv", "conv", LAYER_DEFS[0][1])]
    for i, (_, stride, _) in enumerate(LAYER_DEFS[1:], start=2):
        plan += [(f"layer{i}/depthwise_conv", "dw", stride), (f"layer{i}/pointwise_conv", "pw", 1)]
    assert [p[0] for p in plan] == layer_names()[:-1]
    return plan + [("logits", "fc", 1)]


@dataclass
class QuantSpec:
    """Activation ranges [lo, hi] per tensor (shape [30, 2]) and whether weights are fake-quantized."""

    ranges: np.ndarray
    weights: bool = True
    output: bool = True  # round the sigmoid to the int8 output's 1/256 step


def _flat(weights: YamnetWeights) -> tuple[list[np.ndarray], list[np.ndarray]]:
    names = [p[0] for p in layer_plan()]
    return [weights.kernels[n] for n in names], [weights.biases[n] for n in names]


def relu_fn(tf: Any, activation: str) -> Any:
    """The convolutions' activation: ReLU for yamnet.h5, ReLU6 for Google's TF Hub lite model."""
    return tf.nn.relu6 if activation == "relu6" else tf.nn.relu


def _fq_weight(tf: Any, k: Any, kind: str) -> Any:
    """Per-output-channel symmetric int8 (-127..127), as the TFLite converter quantizes weights."""
    if kind == "dw":
        k3 = k[:, :, :, 0]
        m = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(k3), axis=[0, 1]), 1e-12))
        q = tf.quantization.fake_quant_with_min_max_vars_per_channel(k3, -m, m, num_bits=8, narrow_range=True)
        return q[:, :, :, None]
    axes = list(range(len(k.shape) - 1))
    m = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(k), axis=axes), 1e-12))  # scale: no gradient
    return tf.quantization.fake_quant_with_min_max_vars_per_channel(k, -m, m, num_bits=8, narrow_range=True)


def _fq_act(tf: Any, x: Any, lo: Any, hi: Any) -> Any:
    """Asymmetric int8 fake quantization; a range with hi <= lo leaves the tensor in float (ablations)."""
    q = tf.quantization.fake_quant_with_min_max_vars(x, lo, tf.maximum(hi, lo + 1e-6), num_bits=8)
    return tf.where(hi > lo, q, x)


def forward(tf: Any, kernels: list[Any], biases: list[Any], x: Any, ranges: Any = None, qweights: bool = True,
            qoutput: bool = True, taps: list[Any] | None = None,
            overrides: dict[int, Callable[[Any, Any], Any]] | None = None, relu6: bool = False) -> tuple[Any, Any]:
    """(logits, scores) for patches x [n, 96, 64]. ``ranges`` None runs the float model.

    ``taps``, when given, receives every activation tensor 0..29 before its own quantization
    (but computed from quantized upstream tensors). ``overrides`` maps a tensor to a function
    (value, its [lo, hi] range) that replaces its quantization (diagnostics: clip only, more bits...).
    ``relu6`` for weights with ReLU6 activations (Google's TF Hub lite model).
    """
    plan = layer_plan()
    q = ranges is not None

    def act(t: int, v: Any) -> Any:
        if taps is not None:
            taps.append(v)
        if overrides and t in overrides:
            return overrides[t](v, ranges[t])
        return _fq_act(tf, v, ranges[t, 0], ranges[t, 1]) if q else v

    h = act(0, x)[..., None]
    for i, (_, kind, stride) in enumerate(plan[:-1]):
        k = _fq_weight(tf, kernels[i], kind) if q and qweights else kernels[i]
        if kind == "dw":
            h = tf.nn.depthwise_conv2d(h, k, [1, stride, stride, 1], "SAME")
        else:
            h = tf.nn.conv2d(h, k, stride, "SAME")
        h = act(i + 1, relu_fn(tf, "relu6" if relu6 else "relu")(h + biases[i]))
    emb = act(EMBEDDING_T, tf.reduce_mean(h, axis=[1, 2]))
    k = _fq_weight(tf, kernels[-1], "fc") if q and qweights else kernels[-1]
    logits = act(LOGITS_T, tf.matmul(emb, k) + biases[-1])
    scores = tf.sigmoid(logits)
    if q and qoutput:
        scores = tf.quantization.fake_quant_with_min_max_vars(scores, 0.0, 255.0 / 256.0, num_bits=8)
    return logits, scores


class Simulator:
    """Batched float / fake-quant inference for one set of (already transformed) weights."""

    def __init__(self, weights: YamnetWeights, batch: int = 100):
        import tensorflow as tf

        self.tf = tf
        self.batch = batch
        self.relu6 = weights.activation == "relu6"
        ks, bs = _flat(weights)
        self.kernels = [tf.constant(k, tf.float32) for k in ks]
        self.biases = [tf.constant(b, tf.float32) for b in bs]
        self._run = tf.function(self._call, reduce_retracing=True)

    def _call(self, x: Any, ranges: Any, quant: bool, qweights: bool, qoutput: bool) -> tuple[Any, Any]:
        return forward(self.tf, self.kernels, self.biases, x, ranges if quant else None, qweights, qoutput,
                       relu6=self.relu6)

    def batches(self, patches: np.ndarray) -> Iterator[np.ndarray]:
        for i in range(0, len(patches), self.batch):
            yield patches[i : i + self.batch]

    def scores(self, patches: np.ndarray, spec: QuantSpec | None = None, logits: bool = False) -> np.ndarray:
        """Scores (or logits) for [n, 96, 64] patches; float when ``spec`` is None."""
        tf = self.tf
        r = tf.constant(spec.ranges if spec is not None else np.zeros((N_TENSORS, 2)), tf.float32)
        out = []
        for xb in self.batches(patches):
            lg, sc = self._run(tf.constant(xb, tf.float32), r, spec is not None,
                               bool(spec.weights) if spec else False, bool(spec.output) if spec else False)
            out.append((lg if logits else sc).numpy())
        return np.concatenate(out)

    def activations(self, patches: np.ndarray, spec: QuantSpec | None,
                    tensors: list[int]) -> Iterator[list[np.ndarray]]:
        """Per batch, the requested activation tensors (as produced by the float or quantized chain)."""
        tf = self.tf
        r = None if spec is None else tf.constant(spec.ranges, tf.float32)
        for xb in self.batches(patches):
            taps: list[Any] = []
            forward(tf, self.kernels, self.biases, tf.constant(xb, tf.float32), r,
                    spec.weights if spec else False, True, taps, relu6=self.relu6)
            yield [taps[t].numpy() for t in tensors]
