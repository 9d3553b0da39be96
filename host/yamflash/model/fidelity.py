"""How closely the INT8 model follows the float model on the same patches (STM32Cube.AI-style metrics)."""

from __future__ import annotations

from typing import Any

import numpy as np


def compare(ref: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    """Patch-level metrics between reference scores and test scores, both [n, classes]."""
    ref = np.asarray(ref, np.float64)
    test = np.asarray(test, np.float64)
    n = len(ref)
    if n == 0:
        return {"patches": 0}
    top1 = float(np.mean(ref.argmax(1) == test.argmax(1)))
    # int8 scores have 256 levels: count a tie at the int8 maximum as agreement when it holds the float top-1
    top1_ties = float(np.mean(test[np.arange(n), ref.argmax(1)] >= test.max(1)))
    r5 = np.argsort(-ref, axis=1)[:, :5]
    t5 = np.argsort(-test, axis=1)[:, :5]
    top5 = float(np.mean([len(set(a) & set(b)) / 5.0 for a, b in zip(r5, t5, strict=True)]))
    cos = np.sum(ref * test, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(test, axis=1) + 1e-12)
    err = np.abs(ref - test)
    l2 = np.linalg.norm(ref - test, axis=1) / (np.linalg.norm(ref, axis=1) + 1e-12)
    return {
        "patches": int(n),
        "top1_agreement": round(top1, 4),
        "top1_tie_aware": round(top1_ties, 4),
        "top5_overlap": round(top5, 4),
        "cosine_mean": round(float(cos.mean()), 4),
        "cosine_min": round(float(cos.min()), 4),
        "mae": round(float(err.mean()), 6),
        "max_abs_error": round(float(err.max()), 4),
        "rmse": round(float(np.sqrt(np.mean(err**2))), 6),
        "l2_relative_mean": round(float(l2.mean()), 4),
    }


def label_hits(scores: np.ndarray, clip: np.ndarray, targets: dict[int, set[int]]) -> dict[str, Any]:
    """What a user sees: per clip, the mean of its patches' scores; a hit when the top-1 (top-5) class is one of
    the clip's target classes. ``clip``: clip index per patch; ``targets``: clip index -> accepted class indices
    (clips without an entry are not counted)."""
    scores = np.asarray(scores, np.float64)
    top1 = top5 = 0
    for c, want in sorted(targets.items()):
        mean = scores[clip == c].mean(0)
        order = np.argsort(-mean, kind="stable")
        top1 += int(order[0] in want)
        top5 += int(bool(set(order[:5].tolist()) & want))
    n = len(targets)
    return {"clips": n, "top1": round(top1 / max(n, 1), 4), "top5": round(top5 / max(n, 1), 4)}


def table(metrics: dict[str, Any], title: str = "INT8 (TFLite Micro) vs float YAMNet") -> str:
    rows = [(k, v) for k, v in metrics.items() if not isinstance(v, (dict, list))]
    w = max(len(k) for k, _ in rows)
    return "\n".join([title, "-" * len(title)] + [f"{k:<{w}}  {v}" for k, v in rows])
