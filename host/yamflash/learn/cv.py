"""Cross-validation over source recordings: folds that never split a source group, and honest intervals.

A single 20-odd-clip test split cannot tell 87 % from 67 % (its 95 % interval is about +-15 points), so
`distill --cv K` and scripts/bench_custom.py score every labelled clip once, from a model that saw neither
it nor any other clip of its source recording (ESC-50's ``src_file``; a folder's file otherwise).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import UserError
from .train import Clip


def group_folds(clips: list[Clip], k: int, seed: int = 0) -> list[int]:
    """Fold index per clip: whole source groups per fold, each class spread evenly over the folds.

    Per class, its groups (largest first, ties in seeded order) each go to the fold that holds the fewest
    clips of that class, then the fewest clips overall. A group with clips of two classes follows its
    first class (it is never split).
    """
    groups = sorted({c.group for c in clips})
    if k < 2:
        raise UserError(f"--cv {k}: cross-validation needs at least 2 folds.")
    if k > len(groups):
        raise UserError(f"--cv {k}: only {len(groups)} source groups; use at most {len(groups)} folds.")
    rng = np.random.default_rng(seed)
    fold_of: dict[str, int] = {}
    total = np.zeros(k)
    for label in sorted({c.label for c in clips}):
        size: dict[str, int] = {}
        for c in clips:
            if c.label == label and c.group not in fold_of:
                size[c.group] = size.get(c.group, 0) + 1
        items = sorted(size.items())
        order = rng.permutation(len(items))
        items = sorted((items[i] for i in order), key=lambda t: -t[1])  # stable: seeded order within a size
        per = np.zeros(k)
        for group, n in items:
            j = int(np.lexsort((rng.random(k), total, per))[0])
            fold_of[group] = j
            per[j] += n
            total[j] += n
    return [fold_of[c.group] for c in clips]


def fold_split(folds: list[int], k: int) -> tuple[list[int], list[int]]:
    test = [i for i, f in enumerate(folds) if f == k]
    return [i for i, f in enumerate(folds) if f != k], test


def wilson(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % by default)."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def group_bootstrap(hits: list[bool], groups: list[str], n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the accuracy, resampling whole source groups (clips of one recording
    are not independent, so the Wilson interval, which assumes they are, is too narrow when they agree)."""
    names = sorted(set(groups))
    idx = {g: i for i, g in enumerate(names)}
    right = np.zeros(len(names))
    count = np.zeros(len(names))
    for h, g in zip(hits, groups, strict=True):
        right[idx[g]] += h
        count[idx[g]] += 1
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(names), (n, len(names)))
    acc = right[pick].sum(1) / np.maximum(count[pick].sum(1), 1)
    lo, hi = np.percentile(acc, [2.5, 97.5])
    return float(lo), float(hi)


def summarize(folds: list[dict[str, Any]], truth: list[int], pred: list[int], groups: list[str],
              names: list[str]) -> dict[str, Any]:
    """Per-fold accuracies, their mean and spread, the pooled accuracy over every clip with its intervals,
    and the pooled confusion matrix (rows: true class, columns: predicted)."""
    hits = [t == p for t, p in zip(truth, pred, strict=True)]
    accs = [f["accuracy"] for f in folds]
    cm = np.zeros((len(names), len(names)), np.int64)
    for t, p in zip(truth, pred, strict=True):
        cm[t, p] += 1
    lo, hi = wilson(sum(hits), len(hits))
    blo, bhi = group_bootstrap(hits, groups)
    return {"folds": folds, "k": len(folds), "clips": len(hits), "correct": int(sum(hits)),
            "accuracy": round(sum(hits) / max(len(hits), 1), 4),
            "fold_mean": round(float(np.mean(accs)), 4), "fold_std": round(float(np.std(accs, ddof=1)), 4)
            if len(accs) > 1 else 0.0, "fold_min": min(accs), "fold_max": max(accs),
            "wilson95": [round(lo, 4), round(hi, 4)], "group_bootstrap95": [round(blo, 4), round(bhi, 4)],
            "classes": names, "confusion": cm.tolist()}


def format_summary(s: dict[str, Any], what: str) -> str:
    per = " ".join(f"{f['correct']}/{f['clips']}" for f in s["folds"])
    return (f"{what}: {s['k']}-fold cross-validation by source recording: {s['correct']}/{s['clips']} clips = "
            f"{s['accuracy']:.1%} (95 % Wilson {s['wilson95'][0]:.1%}-{s['wilson95'][1]:.1%}; bootstrap over "
            f"sources {s['group_bootstrap95'][0]:.1%}-{s['group_bootstrap95'][1]:.1%}); folds {per}, "
            f"mean {s['fold_mean']:.1%} +- {s['fold_std']:.1%} (sd)")
