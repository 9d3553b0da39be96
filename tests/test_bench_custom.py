"""scripts/bench_custom.py: the verdict that makes it exit non-zero (accuracy and budgets)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_custom", ROOT / "scripts" / "bench_custom.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_verdict_fails_on_each_missed_target():
    b = _bench()
    assert b.verdict("distill", 0.85, 0.85, 256 * 1024, 128 * 1024) == []  # limits are inclusive
    assert b.verdict("train", 0.95, 0.90) == []
    miss = b.verdict("distill", 0.846, 0.85, 256 * 1024 + 1, 131_073)
    assert len(miss) == 3
    assert "84.6% < 85%" in miss[0] and "262,145 B > 262,144 B" in miss[1] and "131,073 B > 131,072 B" in miss[2]
    assert b.verdict("distill", 0.9, 0.85, 100, 136_176) == ["distill: chip arena 136,176 B > 131,072 B"]
    assert b.verdict("train", 0.89, 0.90) == ["train: cross-validated accuracy 89.0% < 90%"]
