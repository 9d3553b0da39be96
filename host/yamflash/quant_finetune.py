"""Quantization-aware fine-tune of the (equalized) float weights against the float model.

The fake-quantized network of ``quant_sim`` (per-channel int8 weights, the recipe's fixed activation
ranges, int8 logits) is trained to reproduce the float model's scores: the loss is the binary cross
entropy of the quantized logits against the float sigmoid scores (a distillation of each class's
probability; its gradient per logit is score_q - score_f, so classes that matter in the scores dominate).
Rounding is a straight-through estimator (TensorFlow's fake-quant gradients).

Updates are parameterised in units of quantization steps, so one learning rate fits every layer even
though equalization gives the layers very different weight magnitudes: kernel = k0 + step_k * dk with
step_k the per-output-channel int8 weight step of k0, bias = b0 + step_b * db with step_b the int8 step of
the layer's output tensor. Adam then moves every weight by about ``lr`` steps per update at most.

Status (measured on a file-level split of the calibration patches, simulator, eq-sens ranges): Adam at
0.02 steps/update made it much worse (top-1 0.81 -> 0.66 in 100 steps); at 0.002 it is neutral
(0.81 -> 0.82 after 100 steps of 8, 0.81 after 300 steps of 16); SGD diverged. Not used by a recipe.
The activation ranges stay as the recipe chose them; the float function changes slightly, the int8 one
moves towards the float reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .quant_sim import LOGITS_T, N_TENSORS, Simulator, _flat, forward, layer_plan
from .weights import YamnetWeights


def _steps(kernels: list[np.ndarray], ranges: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    plan = layer_plan()
    ks, bs = [], []
    for i, (k, (_, kind, _)) in enumerate(zip(kernels, plan, strict=True)):
        if kind == "dw":
            m = np.abs(k).max(axis=(0, 1, 3))[None, None, :, None]
        else:
            m = np.abs(k).reshape(-1, k.shape[-1]).max(0)
        ks.append((np.maximum(m, 1e-12) / 127.0 * np.ones_like(k)).astype(np.float32))
        t = i + 1 if i < len(plan) - 1 else LOGITS_T
        n = k.shape[2] if kind == "dw" else k.shape[-1]
        bs.append(np.full(n, max(float(ranges[t, 1] - ranges[t, 0]), 1e-6) / 255.0, np.float32))
    return ks, bs


def finetune(weights: YamnetWeights, ranges: np.ndarray, patches: np.ndarray, steps: int = 300,
             batch: int = 16, lr: float = 0.002, seed: int = 0, teacher: np.ndarray | None = None,
             log: Callable[[str], None] = print, log_every: int = 50,
             optimizer: str = "adam") -> tuple[YamnetWeights, list[float]]:
    """Return fine-tuned weights (same layout) and the loss per step.

    ``teacher``: float scores [n, classes] of ``patches`` (computed here when None). Data order is fixed by
    ``seed``. ``lr`` 0 returns the weights unchanged (tested).
    """
    import tensorflow as tf

    from .quant_equalize import copy_weights

    if teacher is None:
        teacher = Simulator(weights).scores(patches)
    k0, b0 = _flat(weights)
    sk, sb = _steps(k0, ranges)
    ck = [tf.constant(k) for k in k0]
    cb = [tf.constant(b) for b in b0]
    csk = [tf.constant(s) for s in sk]
    csb = [tf.constant(s) for s in sb]
    dk = [tf.Variable(tf.zeros_like(k)) for k in ck]
    db = [tf.Variable(tf.zeros_like(b)) for b in cb]
    rng_t = tf.constant(np.asarray(ranges, np.float32).reshape(N_TENSORS, 2))
    opt = tf.keras.optimizers.Adam(learning_rate=lr) if optimizer == "adam" else \
        tf.keras.optimizers.SGD(learning_rate=lr, momentum=0.9)
    params = dk + db

    @tf.function(reduce_retracing=True)
    def step(x: Any, target: Any) -> Any:
        with tf.GradientTape() as tape:
            kern = [a + s * d for a, s, d in zip(ck, csk, dk, strict=True)]
            bias = [a + s * d for a, s, d in zip(cb, csb, db, strict=True)]
            taps: list[Any] = []
            forward(tf, kern, bias, x, rng_t, True, False, taps)
            logits = taps[LOGITS_T]  # before the int8 logit clamp, whose STE gradient is zero outside it
            bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits)
            loss = tf.reduce_mean(tf.reduce_sum(bce, axis=1))
        grads = tape.gradient(loss, params)
        opt.apply_gradients(zip(grads, params, strict=True))
        return loss

    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(patches)) for _ in range(-(-steps * batch // len(patches)))])
    losses: list[float] = []
    if lr > 0:
        for s in range(steps):
            idx = order[s * batch : (s + 1) * batch]
            losses.append(float(step(tf.constant(patches[idx], tf.float32), tf.constant(teacher[idx], tf.float32))))
            if log_every and (s + 1) % log_every == 0:
                log(f"fine-tune step {s + 1}/{steps}: loss {np.mean(losses[-log_every:]):.4f}")
    out = copy_weights(weights)
    for i, (name, _, _) in enumerate(layer_plan()):
        out.kernels[name] = (k0[i] + sk[i] * dk[i].numpy()).astype(np.float32)
        out.biases[name] = (b0[i] + sb[i] * db[i].numpy()).astype(np.float32)
    return out, losses
