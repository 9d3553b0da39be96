"""The compact student: its shape (YAMNet's first seven layers, narrowed to the chip's budget) and its start as
a cut-out of YAMNet (per layer the channels that best span YAMNet's, refitted by least squares on unlabelled
patches), before distill.py trains it. See distill.py for why."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..frontend import PARAMS
from ..model.weights import LAYER_DEFS

# The student is YAMNet's first seven layers (weights.LAYER_DEFS: the 3x3 convolution, then depthwise-separable
# blocks with YAMNet's strides), one width per layer: layers 1-2 narrowed (their 48x32 maps set the arena),
# layers 3-4 at 112 of 128 (the 24x16 maps of layer 4's 1x1 convolution, in + out + ESP-NN's copy of its filter,
# are the chip arena's peak: 128 channels measured 136,160 B on the chip, 112 measure 129,504 B, -m32 127,900 B;
# widths stay multiples of 16, as ESP-NN's S3 depthwise kernel pads others with a whole-map copy: 120 measured
# 233,312 B), layer 5 at YAMNet's width, layer 6 at 224 of 256 and layer 7 at 256 of 512 channels (the
# parameter budget); the mean of layer 7 is the 256-d embedding. A linear probe on YAMNet's own pooled
# layer 6 / 7 / 12 gets 78 / 87 / 96 % on an ESC-10 split: depth up to layer 7 is what the budget buys.
STUDENT_WIDTHS: tuple[int, ...] = (16, 48, 112, 112, 256, 224, 256)
EMBEDDING = STUDENT_WIDTHS[-1]
# Ops the student may contain once converted: what TFLite Micro has and ESP-NN accelerates (+ glue).
# CONCATENATION, PAD and SLICE come from the chip layout's bit-exact rewrites (chip/rewrite.py): copies.
ALLOWED_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MEAN", "AVERAGE_POOL_2D", "RESHAPE",
                         "LOGISTIC", "CONCATENATION", "PAD", "SLICE"})


def student_plan(widths: tuple[int, ...] | None = None) -> list[tuple[str, str, int, int, str]]:
    """(Keras layer name, kind "conv" | "dw" | "pw", stride, output channels, YAMNet layer) in graph order."""
    widths = widths or STUDENT_WIDTHS
    plan = []
    cin = 1
    for i, ((kind, stride, _), w) in enumerate(zip(LAYER_DEFS[: len(widths)], widths, strict=True), start=1):
        if kind == "conv":
            plan.append((f"layer{i}_conv", "conv", stride, w, f"layer{i}/conv"))
        else:
            plan += [(f"layer{i}_dw", "dw", stride, cin, f"layer{i}/depthwise_conv"),
                     (f"layer{i}_pw", "pw", 1, w, f"layer{i}/pointwise_conv")]
        cin = w
    return plan


def build_student(batch: int | None = None, name: str = "student", widths: tuple[int, ...] | None = None) -> Any:
    """[b, 96, 64] float log-mel -> [b, 256] embedding: YAMNet's layers at reduced width (biases, ReLU, no BN)."""
    import tensorflow as tf

    L = tf.keras.layers
    inp = tf.keras.Input((PARAMS.patch_frames, PARAMS.num_mel_bins), batch_size=batch, name="patch")
    x = L.Reshape((PARAMS.patch_frames, PARAMS.num_mel_bins, 1))(inp)
    for lname, kind, stride, f, _ in student_plan(widths):
        if kind == "dw":
            x = L.DepthwiseConv2D(3, strides=stride, padding="same", name=lname)(x)
        else:
            x = L.Conv2D(f, 3 if kind == "conv" else 1, strides=stride, padding="same", name=lname)(x)
        x = L.ReLU()(x)
    emb = L.GlobalAveragePooling2D(name="embedding")(x)
    return tf.keras.Model(inp, emb, name=name)


def _greedy_span(gram: np.ndarray, k: int) -> np.ndarray:
    """Greedy pivoted Cholesky of a Gram matrix: k columns that together span most of all columns."""
    g = gram.astype(np.float64)
    d = np.diag(g).copy()
    low = np.zeros((len(g), k))
    sel: list[int] = []
    for j in range(k):
        p = int(np.argmax(d))
        sel.append(p)
        low[:, j] = (g[:, p] - low[:, :j] @ low[p, :j]) / np.sqrt(max(d[p], 1e-12))
        d -= low[:, j] ** 2
        d[sel] = -np.inf
    return np.sort(np.array(sel))


def _ridge(gram: np.ndarray, rhs: np.ndarray, rel: float = 1e-4) -> np.ndarray:
    reg = rel * float(np.mean(np.diag(gram))) + 1e-12
    return np.linalg.solve(gram + reg * np.eye(len(gram)), rhs)


def init_from_teacher(weights: Any, mels: np.ndarray, widths: tuple[int, ...] | None = None,
                      chunk: int = 32, refit_dw: bool = True) -> dict[str, list[np.ndarray]]:
    """Student weights cut out of YAMNet's folded kernels, layer by layer, on unlabelled patches.

    Per layer: keep the channels of YAMNet's output that best span all of them (greedy pivoted Cholesky on
    their covariance, each channel weighted by the norm of the weights that read it; at the embedding, on
    the standardized 1024-d embedding), copy the matching sub-kernels, then refit each depthwise filter and
    each pointwise kernel by ridge regression from the *student's* own inputs to YAMNet's pre-activations of
    the kept channels, so the errors of earlier cuts are compensated as far as a linear fit can.
    """
    import tensorflow as tf

    widths = widths or STUDENT_WIDTHS
    plan = student_plan(widths)
    x = mels.astype(np.float32)[..., None]
    tk = {n: weights.kernels[n] for n in weights.kernels}
    tb = {n: weights.biases[n] for n in weights.biases}

    def apply(h: np.ndarray, kind: str, stride: int, k: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(h), chunk):
            v = tf.constant(h[i : i + chunk])
            if kind == "dw":
                y = tf.nn.depthwise_conv2d(v, k, [1, stride, stride, 1], "SAME")
            else:
                y = tf.nn.conv2d(v, k, stride, "SAME")
            out.append((y + b).numpy())
        return np.concatenate(out)

    def out_norm(i: int, c: int) -> np.ndarray:  # how strongly YAMNet layer i+1 reads each output channel
        if i >= len(widths):
            return np.ones(c)
        dw, pw = tk[f"layer{i + 1}/depthwise_conv"], tk[f"layer{i + 1}/pointwise_conv"]
        return np.linalg.norm(dw[:, :, :, 0], axis=(0, 1)) * np.linalg.norm(pw[0, 0], axis=1)

    def pick(t: np.ndarray, i: int, k: int) -> np.ndarray:
        if i == len(widths):  # the embedding: span the standardized pooled features
            e = t.mean(axis=(1, 2))
            z = (e - e.mean(0)) / (e.std(0) + 1e-3)
            return _greedy_span(z.T @ z, k)
        f = t.reshape(-1, t.shape[-1])
        f = f[:: max(1, len(f) // 200_000)].astype(np.float64)
        f = (f - f.mean(0)) * out_norm(i, f.shape[1])
        return _greedy_span(f.T @ f, k)

    def lstsq(a: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = a.reshape(-1, a.shape[-1]).astype(np.float64)
        a = np.concatenate([a, np.ones((len(a), 1))], 1)
        w = _ridge(a.T @ a, a.T @ z.reshape(-1, z.shape[-1]))
        return w[:-1].astype(np.float32), w[-1].astype(np.float32)

    def refit_depthwise(s: np.ndarray, target: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
        """Per channel: 3x3 filter + bias from the student's input map to YAMNet's pre-activation."""
        c = s.shape[-1]
        gram = np.zeros((c, 10, 10))
        rhs = np.zeros((c, 10))
        for i in range(0, len(s), chunk):
            pt = tf.image.extract_patches(tf.constant(s[i : i + chunk]), [1, 3, 3, 1], [1, stride, stride, 1],
                                          [1, 1, 1, 1], "SAME").numpy()
            pt = pt.reshape(-1, 9, c).astype(np.float64)
            pt = np.concatenate([pt, np.ones((len(pt), 1, c))], 1)
            zz = target[i : i + chunk].reshape(-1, c).astype(np.float64)
            gram += np.einsum("rkc,rlc->ckl", pt, pt)
            rhs += np.einsum("rkc,rc->ck", pt, zz)
        w = np.stack([_ridge(gram[j], rhs[j]) for j in range(c)])
        return w[:, :9].T.reshape(3, 3, c, 1).astype(np.float32), w[:, 9].astype(np.float32)

    out: dict[str, list[np.ndarray]] = {}
    t = s = x
    keep = np.arange(1)
    for lname, kind, stride, f, tname in plan:
        i = int(tname.split("/")[0][5:])
        if kind == "conv":
            t = np.maximum(apply(t, "conv", stride, tk[tname], tb[tname]), 0)
            keep = pick(t, i, f)
            out[lname] = [tk[tname][..., keep], tb[tname][keep]]
            s = t[..., keep]
        elif kind == "dw":
            zt = apply(t, "dw", stride, tk[tname], tb[tname])
            k, b = tk[tname][:, :, keep, :], tb[tname][keep]
            if refit_dw and len(keep) < t.shape[-1]:  # a narrowed layer: its filters see other inputs now
                k, b = refit_depthwise(s, zt[..., keep], stride)
            out[lname] = [k, b]
            s = np.maximum(apply(s, "dw", stride, k, b), 0)
            t = np.maximum(zt, 0)
        else:
            z = apply(t, "pw", 1, tk[tname], tb[tname])
            t = np.maximum(z, 0)
            keep = pick(t, i, f)
            k, b = lstsq(s, z[..., keep])
            out[lname] = [k[None, None], b]
            s = np.maximum(s @ k + b, 0)
    return out


def classifier(student: Any, kernel: np.ndarray, bias: np.ndarray, batch: int | None) -> Any:
    """Patch -> student -> Dense(C, sigmoid): the deployable model (batch 1 for export)."""
    import tensorflow as tf

    inp = tf.keras.Input((PARAMS.patch_frames, PARAMS.num_mel_bins), batch_size=batch, name="patch")
    dense = tf.keras.layers.Dense(kernel.shape[1], activation="sigmoid", name="head")
    model = tf.keras.Model(inp, dense(student(inp, training=False)))
    dense.set_weights([kernel, bias])
    return model
