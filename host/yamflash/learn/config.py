"""`yamflash distill`'s settings, apart from the training code so the CLI reads its defaults at start-up
without importing numpy or TensorFlow. The defaults are the configuration scripts/bench_custom.py measures."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DistillConfig:
    epochs: int = 0  # distillation passes over the unlabelled views (0: the cut-out student as is; see distill.py)
    views: int = 8  # per unlabelled clip: the clip itself plus views-1 augmented copies
    batch: int = 64
    lr: float = 3e-4  # low: refine the cut-out, do not relearn it
    score_weight: float = 1.0  # weight of the 521-score term beside the (normalized) embedding term
    calib_count: int = 500
    init_patches: int = 512  # unlabelled patches the student is cut out of YAMNet on
    finetune_epochs: int = 0  # student + head on the labelled clips after distillation (0: head only; 30 overfit)
    head_l2_teacher: float = 0.1  # L2 of the head on YAMNet's embeddings (standardized), composed via the projection
    head_l2_student: float = 0.1  # L2 of the head on the student's features of the labelled clips' views
    seed: int = 0
