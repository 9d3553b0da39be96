"""Patches from folders of real audio: seeded draws for calibration, held-out files for evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import list_audio, load_audio
from .errors import UserError
from .frontend import waveform_to_patches
from .progress import track


@dataclass
class PatchSet:
    patches: np.ndarray  # [n, 96, 64] float32 log-mel
    clip: np.ndarray  # [n] index into files
    files: list[Path]


def patches_of(files: list[Path], what: str) -> PatchSet:
    out, clip = [], []
    for k, f in enumerate(track(files, f"computing log-mel patches ({what})")):
        p = waveform_to_patches(load_audio(f))
        out.append(p)
        clip += [k] * len(p)
    if not out:
        raise UserError(f"no audio for {what}")
    return PatchSet(np.concatenate(out), np.asarray(clip, np.int64), list(files))


def split_files(files: list[Path], holdout: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Keep whole files out of calibration, so evaluation never sees a calibrated clip."""
    if len(files) < 2:
        raise UserError("need at least 2 audio files to calibrate on some and evaluate on the rest; "
                        "add files or pass --eval-dir.")
    order = np.random.default_rng(seed).permutation(len(files))
    n_eval = min(len(files) - 1, max(1, int(round(holdout * len(files)))))
    ev = sorted(files[i] for i in order[:n_eval])
    cal = sorted(files[i] for i in order[n_eval:])
    return cal, ev


def draw(ps: PatchSet, count: int, seed: int) -> np.ndarray:
    """``count`` patches drawn without replacement (all of them when there are fewer), fixed seed."""
    n = len(ps.patches)
    idx = np.sort(np.random.default_rng(seed).choice(n, size=min(count, n), replace=False))
    return ps.patches[idx]


def synthetic_patches(count: int, seed: int) -> np.ndarray:
    """N(-5, 3) noise patches: what the published recipe calibrates on. Caps scores; see the warning."""
    return np.random.default_rng(seed).normal(-5.0, 3.0, size=(count, 96, 64)).astype(np.float32)


def collect(calib_dir: str | None, eval_dir: str | None, calib_count: int, eval_count: int | None,
            seed: int, holdout: float = 0.3) -> tuple[np.ndarray, PatchSet | None, dict]:
    """Calibration patches, evaluation patch set, and a description for the manifest."""
    info: dict = {"seed": seed}
    if calib_dir is None:
        ev = patches_of(list_audio(eval_dir), "evaluation") if eval_dir else None
        return synthetic_patches(calib_count, seed), ev, {**info, "synthetic": True, "patches": calib_count}
    files = list_audio(calib_dir)
    if eval_dir:
        cal_files, ev_files = files, list_audio(eval_dir)
    else:
        cal_files, ev_files = split_files(files, holdout, seed)
    cal = patches_of(cal_files, "calibration")
    calib = draw(cal, calib_count, seed)
    ev = patches_of(ev_files, "evaluation")
    if eval_count is not None and eval_count < len(ev.patches):
        keep = np.sort(np.random.default_rng(seed + 1).choice(len(ev.patches), eval_count, replace=False))
        ev = PatchSet(ev.patches[keep], ev.clip[keep], ev.files)
    info.update(synthetic=False, dir=str(calib_dir), files=len(cal_files), patches=int(len(calib)),
                eval_dir=str(eval_dir) if eval_dir else f"{len(ev_files)} files of {calib_dir} held out",
                eval_files=len(ev_files), eval_patches=int(len(ev.patches)))
    return calib, ev, info
