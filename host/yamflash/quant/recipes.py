"""Float YAMNet -> full-INT8 TFLite (int8 patch in, int8 sigmoid scores out), builtin ops only.

Five recipes:

* ``ptq-minmax``: TensorFlow's converter alone, per-channel weights, min/max activation ranges. On real
  audio it collapses (see INT8-FINDINGS): one scale per deep tensor is set by a few huge channels.
* ``eq-sens``: (1) equalize every activation tensor's channels (ReLU commutes with positive
  per-channel scaling, so the float function is unchanged; ``quant_equalize``); (2) start from min/max
  ranges of the equalized model and clamp the logits to [-8, 8] (the int8 sigmoid output cannot tell
  apart anything beyond); (3) per tensor, pick the range that minimizes the score error when only that
  tensor is quantized, measured on calibration patches in the batched simulator (``quant_sim``);
  (4) convert the equalized weights and write the chosen ranges and re-quantized biases into the
  flatbuffer (``quant_flatbuffer``).
* ``eq-joint``: ``eq-sens`` plus, between (3) and (4), one pass of coordinate descent on the
  ranges with everything quantized (weights, all activations, output), deepest tensor first, keeping a
  change of the upper bound (x1.3, x0.8, x0.6) only when it lowers the score MSE (``joint_ranges``).

* ``eq-round``: ``eq-joint`` with, right after equalization, the int8 rounding of every layer's
  weights chosen to minimize the layer's output error on 400 calibration patches (float activations;
  floor or ceil per weight, integer coordinate descent, ``rounding``); the ranges are then searched
  for the rounded weights against the float model. The int8 weights in the .tflite are checked to be
  exactly the optimised ones.
* ``eq-clip`` (default): ``eq-round`` plus, after the joint search, a clip per channel for every tensor a
  depthwise convolution reads (``clip``: a free per-channel rescale, chosen by the error of the depthwise
  output after its ReLU, on 200 calibration patches), then one more joint pass on the new chain.
  TFLite Micro, yamnet.h5 weights, 780 held-out patches (scripts/bench_convert.py): top-1 0.891 / cosine
  0.989 vs 0.846 / 0.974 for eq-round in the same run; the graph, chip estimate and arena are unchanged.

ReLU6 weights (Google's TF Hub lite model) skip step (1) of the eq-* recipes, which needs plain ReLU, and
their ranges stay at or below 6; all else is the same. They are quantization-friendly: eq-round gives
top-1 0.955 / cosine 0.9986 on the same held-out patches (ptq-minmax 0.906 / 0.997).

What limited eq-round on the yamnet.h5 weights (``scripts/diagnose_int8.py``): one tensor, layer 12's pointwise
output, which eq-clip's per-channel clips address. Left in float it gave top-1 0.93 / cosine 0.992;
clipping it costs little, its rounding costs the rest, and almost all of that comes from values below
one int8 step, as layer 13's depthwise outputs are small residuals of large cancellations (pre-activation
down to -15 against outputs under 0.6).
It needs ~10 bits.
Tried and dropped: per-channel MSE clips for depthwise inputs measured at the input (no gain; measured at the
depthwise output after its ReLU they are eq-clip), an int16 output head (float logits and output as its bound:
at most +0.003 top-1), weight rounding against quantized inputs (-0.02), layer-wise bias correction,
quantization-aware fine-tunes of the whole net or of layers 12-14 on the calibration audio (the tail
overfits 1,200 patches: train cosine up, held-out down; bias-only updates of a fraction of a step hurt).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..model.weights import YamnetWeights
from ..progress import Steps

RECIPES = ("eq-clip", "eq-joint", "eq-round", "eq-sens", "ptq-minmax")
DEFAULT_RECIPE = "eq-clip"
LOGIT_CLAMP = (-8.0, 8.0)
RANGE_FRACTIONS = (1.0, 0.7, 0.5, 0.35, 0.25, 0.18, 0.12, 0.08)
JOINT_FACTORS = (1.3, 0.8, 0.6)


def convert_int8(weights: YamnetWeights, calib: np.ndarray, log: Callable[[str], None] = print,
                 recipe: str = DEFAULT_RECIPE, **options: Any) -> tuple[bytes, dict[str, Any]]:
    """Return (tflite bytes, recipe description for the manifest)."""
    if recipe == "ptq-minmax":
        return _plain(weights, calib, log)
    if recipe == "eq-sens":
        return _eq_sens(weights, calib, log, joint_passes=0, **options)
    if recipe == "eq-joint":
        return _eq_sens(weights, calib, log, **options)
    if recipe == "eq-round":
        return _eq_sens(weights, calib, log, round_patches=400, **options)
    if recipe == "eq-clip":
        return _eq_sens(weights, calib, log, round_patches=400, clip_patches=200, **options)
    raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")


def _converter_bytes(weights: YamnetWeights, calib: np.ndarray) -> bytes:
    from ..model.keras import build

    return ptq_int8(build(weights), calib)


def ptq_int8(model: Any, calib: np.ndarray) -> bytes:
    """TensorFlow's full-int8 post-training conversion (int8 in and out, min/max from ``calib``)."""
    import tensorflow as tf

    def representative() -> Any:
        for p in calib:
            yield [p[None].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def _plain(weights: YamnetWeights, calib: np.ndarray,
           log: Callable[[str], None]) -> tuple[bytes, dict[str, Any]]:
    log(f"calibrating on {len(calib)} patches and converting (plain min/max)")
    return _converter_bytes(weights, calib), {"recipe": "ptq-minmax", "calibration_patches": int(len(calib))}


def channel_samples(sim: Any, patches: np.ndarray, rows: int = 20000, seed: int = 0) -> list[np.ndarray]:
    """Per activation tensor, a random sample of its per-position channel vectors [n, C] (float model).

    A sample bounds memory (the first layers hold 49k values per patch) and is enough for maxima of
    channels that matter; every patch contributes.
    """
    from .simulate import N_TENSORS

    rng = np.random.default_rng(seed)
    nb = max(1, -(-len(patches) // sim.batch))
    acc: list[list[np.ndarray]] = [[] for _ in range(N_TENSORS)]
    for outs in sim.activations(patches, None, list(range(N_TENSORS))):
        for t, a in enumerate(outs):
            a = a.reshape(-1, a.shape[-1])
            k = max(1, rows // nb)
            acc[t].append(a if len(a) <= k else a[rng.choice(len(a), k, replace=False)])
    return [np.concatenate(a) for a in acc]


def equalize(weights: YamnetWeights, samples: list[np.ndarray], alpha: float) -> YamnetWeights:
    """Equalized copy of ``weights`` from per-channel maxima of the float activations."""
    from . import equalize as qe

    w = qe.copy_weights(weights)
    for t in qe.tensors_scaled():
        f = qe.equalization_factors(samples[t].max(0), qe.consumer_row_range(w, t), alpha)
        qe.scale_channels(w, t, f)
    return w


def minmax_ranges(samples: list[np.ndarray]) -> np.ndarray:
    """[30, 2] ranges from the samples: the input's full span, [0, max] for ReLU outputs, logits clamped."""
    from .simulate import LOGITS_T

    r = np.array([[min(0.0, float(a.min())), max(0.0, float(a.max()))] for a in samples], np.float32)
    r[LOGITS_T] = LOGIT_CLAMP
    return r


def sensitivity_ranges(sim: Any, ranges: np.ndarray, tune: np.ndarray, fractions: tuple[float, ...],
                       log: Callable[[str], None], ref: np.ndarray | None = None) -> tuple[np.ndarray, list[float]]:
    """Per ReLU tensor, the fraction of its max range with the least score MSE when it alone (with the
    input) is quantized. Tensors interact little, so one pass of 1-D searches is enough."""
    from .simulate import EMBEDDING_T, QuantSpec

    ref = sim.scores(tune) if ref is None else ref
    base = np.zeros_like(ranges)
    base[0] = ranges[0]
    out = ranges.copy()
    chosen = []
    steps = Steps("range search (tensor x fraction)", EMBEDDING_T * len(fractions))
    for t in range(1, EMBEDDING_T + 1):
        errs = []
        for f in fractions:
            r = base.copy()
            r[t] = [0.0, ranges[t, 1] * f]
            got = sim.scores(tune, QuantSpec(r, weights=False, output=False))
            errs.append(float(np.mean((got - ref) ** 2)))
            steps.advance()
        best = int(np.argmin(errs))
        out[t, 1] = ranges[t, 1] * fractions[best]
        chosen.append(float(fractions[best]))
    steps.close()
    log(f"range search: fractions of max per tensor {chosen}")
    return out, chosen


def joint_ranges(sim: Any, ranges: np.ndarray, tune: np.ndarray, factors: tuple[float, ...], passes: int,
                 log: Callable[[str], None], ref: np.ndarray | None = None,
                 cap: float | None = None) -> tuple[np.ndarray, list[float]]:
    """Coordinate descent on the ReLU/embedding ranges with everything quantized (weights, all activations,
    output): from the deepest tensor up, try ``factors`` x the current upper bound and keep a change only
    when it lowers the score MSE on ``tune``. Catches the interactions the one-at-a-time search misses.
    ``cap``: no upper bound above it (6 for ReLU6 weights: values never exceed it)."""
    from .simulate import EMBEDDING_T, QuantSpec

    ref = sim.scores(tune) if ref is None else ref

    def err(r: np.ndarray) -> float:
        return float(np.mean((sim.scores(tune, QuantSpec(r)) - ref) ** 2))

    out = ranges.copy()
    cur = start = err(out)
    steps = Steps("joint range search (pass x tensor x factor)", passes * EMBEDDING_T * len(factors))
    for _ in range(passes):
        for t in range(EMBEDDING_T, 0, -1):
            best_e, best_hi = cur, out[t, 1]
            for f in factors:
                steps.advance()
                r = out.copy()
                r[t, 1] = out[t, 1] * f if cap is None else min(out[t, 1] * f, cap)
                if r[t, 1] == out[t, 1]:
                    continue
                e = err(r)
                if e < best_e:
                    best_e, best_hi = e, r[t, 1]
            cur, out[t, 1] = best_e, best_hi
    steps.close()
    gain = [round(float(out[t, 1] / ranges[t, 1]), 3) for t in range(1, EMBEDDING_T + 1)]
    log(f"joint range search: score MSE {start:.3g} -> {cur:.3g}; factors per tensor {gain}")
    return out, gain


def _eq_sens(weights: YamnetWeights, calib: np.ndarray, log: Callable[[str], None], alpha: float = 0.5,
             stats_patches: int = 600, tune_patches: int = 150,
             fractions: tuple[float, ...] = RANGE_FRACTIONS, joint_passes: int = 1,
             joint_factors: tuple[float, ...] = JOINT_FACTORS,
             round_patches: int = 0, clip_patches: int = 0) -> tuple[bytes, dict[str, Any]]:
    from .flatbuffer import set_ranges
    from .simulate import Simulator, layer_plan

    t0 = time.monotonic()
    rng = np.random.default_rng(0)
    stats = calib[np.sort(rng.choice(len(calib), min(stats_patches, len(calib)), replace=False))]
    tune = calib[np.sort(rng.choice(len(calib), min(tune_patches, len(calib)), replace=False))]
    equalized = weights.activation == "relu"
    if equalized:
        log(f"equalizing channels (alpha {alpha}) from {len(stats)} calibration patches")
        weq = equalize(weights, channel_samples(Simulator(weights), stats), alpha)
    else:  # ReLU6 caps each channel at 6, which a per-channel rescale would move: skip this step only
        from .equalize import copy_weights

        log("weights use ReLU6 (bounded activations): no channel equalization needed or possible")
        weq = copy_weights(weights)
    ref = None
    wfloat = weq  # the float network, equalized: the per-channel clip search measures against it
    rounding: dict[str, Any] = {}
    if round_patches:
        from .rounding import grid_mismatch, optimise_rounding
        from .simulate import N_TENSORS

        ref = Simulator(weq, batch=tune_patches).scores(tune)  # the float model: weights are about to move
        rpat = calib[np.sort(rng.choice(len(calib), min(round_patches, len(calib)), replace=False))]
        log(f"optimising weight rounding layer by layer on {len(rpat)} patches (float activations)")
        weq, info = optimise_rounding(weq, np.zeros((N_TENSORS, 2), np.float32), rpat, log=log)
        rounding = {"objective": "layer output MSE, float inputs", "span": "floor/ceil",
                    "patches": int(len(rpat)),
                    "error_ratio_vs_nearest": {k: round(v["optimised"] / max(v["nearest"], 1e-30), 4)
                                               for k, v in info.items()}}
    sim = Simulator(weq, batch=tune_patches)
    ranges = minmax_ranges(channel_samples(sim, stats))
    log(f"searching activation ranges on {len(tune)} patches")
    ranges, chosen = sensitivity_ranges(sim, ranges, tune, fractions, log, ref)
    joint: list[float] = []
    if joint_passes:
        ranges, joint = joint_ranges(sim, ranges, tune, joint_factors, joint_passes, log, ref,
                                     cap=None if equalized else 6.0)
    clipping: dict[str, Any] = {}
    if clip_patches and equalized:
        # After the joint search: its tighter ranges are what makes per-channel clips pay (held-out top-1 0.93
        # this way in the simulator, 0.90 when the clips come first), then one more joint pass on the new chain.
        from .clip import clip_channels

        cpat = calib[np.sort(rng.choice(len(calib), min(clip_patches, len(calib)), replace=False))]
        log(f"choosing a clip per channel for every depthwise input on {len(cpat)} patches")
        weq, clipping = clip_channels(weq, wfloat, ranges, cpat, log=log)
        ranges, clipping["joint_range_search_after"] = joint_ranges(
            Simulator(weq, batch=tune_patches), ranges, tune, joint_factors, 1, log, ref)
    elif clip_patches:
        clipping = {"skipped": "ReLU6 weights (channels cannot be rescaled)"}
    log("converting and writing the ranges into the flatbuffer")
    tfl = _converter_bytes(weq, calib[:16])
    tfl = set_ranges(tfl, ranges, [weq.biases[name] for name, _, _ in layer_plan()])
    if round_patches:
        bad, scale_err = grid_mismatch(tfl, weq)
        if bad:
            raise RuntimeError(f"internal: the converter moved {bad} optimised int8 weights off their grid")
        rounding["grid_check"] = {"weights_off_grid": bad, "max_scale_rel_error": scale_err}
    desc: dict[str, Any] = {
        "recipe": ("eq-clip" if clip_patches else "eq-round" if round_patches else "eq-joint" if joint_passes
                   else "eq-sens"),
        **({"weight_rounding": rounding} if round_patches else {}),
        **({"channel_clipping": clipping} if clip_patches else {}),
        "calibration_patches": int(len(calib)),
        "equalization": ({"alpha": alpha, "statistic": "channel max", "patches": int(len(stats))} if equalized
                         else {"skipped": "ReLU6 weights"}),
        "range_search": {"objective": "score MSE, one tensor at a time", "patches": int(len(tune)),
                         "fractions": [float(f) for f in fractions], "chosen": chosen},
        **({"joint_range_search": {"objective": "score MSE, all tensors and weights quantized",
                                   "passes": joint_passes, "factors": [float(f) for f in joint_factors],
                                   "chosen": joint}} if joint_passes else {}),
        "logit_range": list(LOGIT_CLAMP),
        "ranges": [[round(float(a), 5), round(float(b), 5)] for a, b in ranges],
        "seconds": round(time.monotonic() - t0, 1),
    }
    return tfl, desc
