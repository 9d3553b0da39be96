"""What the student learns from: unlabelled audio minus every test clip (by path, content and source group),
seeded augmented views (time shift, gain, mixing two clips, SpecAugment-style masks) and YAMNet's outputs for
them, computed once with the batched float YAMNet and cached."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import list_audio, load_audio
from ..errors import UserError
from ..frontend import PARAMS, waveform_to_patches
from ..progress import log, track
from .train import Clip

AUG_VERSION = 2  # bump when the augmented views change, so cached teacher outputs are recomputed


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _held(files: list[Path], test: list[Clip], groups: dict[Path, str]) -> np.ndarray:
    """Per file: is it a test clip -- same path, same content, or the same source group as one?"""
    test_paths = {c.path.resolve() for c in test}
    test_groups = {c.group for c in test}
    test_hashes = {_sha(c.path) for c in test if c.path.is_file()}
    return np.array([f.resolve() in test_paths or groups.get(f.resolve()) in test_groups
                     or (bool(test_hashes) and _sha(f) in test_hashes) for f in files], bool)


def all_unlabelled(dirs: list[Path]) -> list[Path]:
    """Every audio file under ``dirs``, each once (a folder named twice, or nested, adds nothing)."""
    keep: dict[Path, Path] = {}
    for d in dirs:
        for f in list_audio(d):
            keep.setdefault(f.resolve(), f)
    return sorted(keep.values())


def unlabelled_files(dirs: list[Path], test: list[Clip], groups: dict[Path, str]) -> tuple[list[Path], int]:
    """Audio under ``dirs`` minus any test clip: same path, same content, or the same source group.

    ``groups`` maps resolved paths to source groups (e.g. ESC-50's src_file) for files the metadata names.
    Returns the kept files and how many were held out.
    """
    files = all_unlabelled(dirs)
    held = _held(files, test, groups)
    if held.all():
        raise UserError("no unlabelled audio left after holding out the test clips; pass --unlabelled DIR.")
    return [f for f, h in zip(files, held, strict=True) if not h], int(held.sum())


def _spec_mask(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SpecAugment-style: one band of 4-23 frames and one of 3-11 mel bins set to the patch's mean."""
    p = p.copy()
    fill = p.mean()
    t = int(rng.integers(4, 24))
    t0 = int(rng.integers(0, PARAMS.patch_frames - t))
    p[t0 : t0 + t] = fill
    f = int(rng.integers(3, 12))
    f0 = int(rng.integers(0, PARAMS.num_mel_bins - f))
    p[:, f0 : f0 + f] = fill
    return p


def _views(i: int, waves: list[np.ndarray], rng: np.random.Generator, views: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip i's patches plus views-1 augmented copies (shifted patch grid, gain, half of them mixed with
    another clip, half of them masked SpecAugment-style), and per patch the mixed-in clip's index or -1,
    so that a view holding any test audio can be dropped later."""
    wave = waves[i]
    out, partners = [waveform_to_patches(wave)], [-1]
    for _ in range(views - 1):
        x = wave[int(rng.integers(0, PARAMS.patch_hop_samples)):] * np.float32(10 ** (rng.uniform(-12, 6) / 20))
        partner = -1
        if rng.random() < 0.5 and len(waves) > 1:
            partner = int((i + 1 + rng.integers(len(waves) - 1)) % len(waves))  # any clip but this one
            other = waves[partner]
            n = min(len(x), len(other))
            x = x.copy()
            x[:n] += other[:n] * np.float32(10 ** (rng.uniform(-15, -3) / 20))
        p = waveform_to_patches(x)
        if rng.random() < 0.5:
            p = np.stack([_spec_mask(q, rng) for q in p])
        out.append(p)
        partners.append(partner)
    patches, owners = [], []
    for p, partner in zip(out, partners, strict=True):
        # Digital silence (ESC-50 pads clips with zeros) gives identical constant patches: keep one per view.
        flat = p.reshape(len(p), -1).std(1) < 1e-3
        keep = np.sort(np.concatenate([np.flatnonzero(~flat), np.flatnonzero(flat)[:1]]))
        patches.append(p[keep])
        owners += [partner] * len(keep)
    return np.concatenate(patches), np.array(owners, np.int32)


def teacher_targets(files: list[Path], weights: Any, views: int, seed: int) -> dict[str, np.ndarray]:
    """Augmented views of every unlabelled file with YAMNet's 1024-d embeddings, cached by content.

    Returns ``mel`` [n, 96, 64] float16, ``emb`` [n, 1024], ``owner`` (file index per patch) and ``partner``
    (the file mixed in, or -1). Computed once for all files, so that every split and every fold of ``--cv``
    reuses it: a run drops the patches whose owner or partner is one of its test clips (``usable``).
    """
    import tensorflow as tf

    from ..cachedir import cache_root
    from ..model.keras import build

    h = hashlib.sha256(f"{weights.source.get('sha256', '')}|{views}|{seed}|{AUG_VERSION}".encode())
    for f in files:
        h.update(_sha(f).encode())
    path = cache_root() / f"distill-teacher-{h.hexdigest()[:16]}" / "teacher.npz"
    if path.is_file():
        z = np.load(path)
        log(f"teacher outputs from cache {path} ({len(z['emb'])} patches)")
        return {k: z[k] for k in ("mel", "emb", "owner", "partner")}
    waves = [load_audio(f) for f in track(files, "loading unlabelled audio")]
    rng = np.random.default_rng(seed)
    mels, owner, partner = [], [], []
    for i in track(range(len(waves)), "augmented log-mel views"):
        m, part = _views(i, waves, rng, views)
        mels.append(m)
        owner.append(np.full(len(m), i, np.int32))
        partner.append(part)
    mel = np.concatenate(mels)
    model = build(weights, outputs="embeddings_batch")
    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    chunks = range(0, len(mel), 128)
    emb = np.concatenate([fn(tf.constant(mel[i : i + 128])).numpy() for i in track(chunks, "YAMNet teacher")])
    out = {"mel": mel.astype(np.float16), "emb": emb.astype(np.float32), "owner": np.concatenate(owner),
           "partner": np.concatenate(partner)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(path)
    return out


def usable(teacher: dict[str, np.ndarray], held: np.ndarray) -> np.ndarray:
    """Patches that hold no audio of a held-out file, neither as the clip itself nor mixed in."""
    owner, partner = teacher["owner"], teacher["partner"]
    return ~held[owner] & ~np.where(partner >= 0, held[np.maximum(partner, 0)], False)
