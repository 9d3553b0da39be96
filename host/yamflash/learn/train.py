"""`yamflash train`: teach the board your own sounds with a classifier on YAMNet's 1024-d embeddings.

The head is one Dense layer (1024 -> C, sigmoid), so the exported model is YAMNet's exact architecture
with a new classifier: the same INT8 converter, firmware and tools apply unchanged. Optionally some of
the 521 AudioSet outputs are kept beside the new classes (their columns are copied from YAMNet's own).
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import AUDIO_SUFFIXES, load_audio
from ..errors import UserError
from ..frontend import waveform_to_patches
from ..model.weights import YamnetWeights
from ..progress import log, track


@dataclass
class Clip:
    path: Path
    label: str
    group: str  # clips of one source share a group and never straddle train and test
    fold: str | None = None


def clips_from_folder(root: Path) -> list[Clip]:
    """One subfolder per class."""
    if not root.is_dir():
        raise UserError(f"{root} is not a folder; pass a folder with one subfolder of audio per class.")
    clips = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f for f in sub.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise UserError(f"class folder {sub} has no audio files; add recordings or remove it.")
        clips += [Clip(f, sub.name, f"{sub.name}/{f.stem}") for f in files]
    return clips


def clips_from_csv(path: Path, audio_dir: Path | None, where: dict[str, str]) -> list[Clip]:
    """An ESC-50-style CSV: filename, category, fold (src_file, when present, groups clips by source)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}.") from None
    need = {"filename", "category"}
    if not rows or not need <= set(rows[0]):
        have = ", ".join(rows[0]) if rows else "nothing"
        raise UserError(f"{path} must have columns filename and category (and optionally fold); it has {have}.")
    base = audio_dir or (path.parent.parent / "audio" if (path.parent.parent / "audio").is_dir() else path.parent)
    for key, value in where.items():
        if key not in rows[0]:
            raise UserError(f"--where {key}=...: {path} has no column {key}.")
        rows = [r for r in rows if r[key] == value]
    return [Clip(base / r["filename"], r["category"], r.get("src_file") or r["filename"], r.get("fold")) for r in rows]


def split(clips: list[Clip], test_fraction: float, seed: int, test_fold: str | None) -> tuple[list[int], list[int]]:
    """By fold when there are several folds, else a seeded split of whole source groups per class."""
    folds = sorted({c.fold for c in clips if c.fold is not None})
    if test_fold is not None or len(folds) >= 2:
        tf_ = test_fold or folds[-1]
        test = [i for i, c in enumerate(clips) if c.fold == tf_]
        train = [i for i, c in enumerate(clips) if c.fold != tf_]
        return train, test
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in sorted({c.label for c in clips}):
        groups = sorted({c.group for c in clips if c.label == label})
        rng.shuffle(groups)
        n_test = max(1, int(round(test_fraction * len(groups)))) if len(groups) > 1 else 0
        held = set(groups[:n_test])
        for i, c in enumerate(clips):
            if c.label == label:
                (test if c.group in held else train).append(i)
    return sorted(train), sorted(test)


def embed(clips: list[Clip], weights: YamnetWeights, cache: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per clip: [patches, 96, 64] log-mel and [patches, 1024] float embeddings, cached by file content."""
    from ..model.keras import build

    model = build(weights, outputs="embeddings")
    cache.mkdir(parents=True, exist_ok=True)
    wkey = weights.source.get("sha256", "")[:16]
    mels, embs = [], []
    for c in track(clips, "YAMNet embeddings"):
        if not c.path.is_file():
            raise UserError(f"audio file {c.path} is missing; fix the CSV or the folder.")
        key = hashlib.sha256(c.path.read_bytes()).hexdigest()[:24]
        f = cache / f"{wkey}-{key}.npz"
        if f.is_file():
            z = np.load(f)
            mels.append(z["mel"])
            embs.append(z["emb"])
            continue
        mel = waveform_to_patches(load_audio(c.path))
        emb = np.concatenate([model(p[None]).numpy() for p in mel])
        tmp = f.with_suffix(".tmp.npz")
        np.savez(tmp, mel=mel, emb=emb)
        tmp.replace(f)
        mels.append(mel)
        embs.append(emb)
    return mels, embs


def train_head(x: np.ndarray, y: np.ndarray, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Dense(1024 -> C, sigmoid) by binary cross-entropy, class-balanced, early stopping on held-back groups."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    counts = np.bincount(y, minlength=classes).astype(np.float64)
    sample_w = (len(y) / (classes * np.maximum(counts, 1)))[y]
    onehot = np.eye(classes, dtype=np.float32)[y]
    perm = np.random.default_rng(seed).permutation(len(y))
    n_val = max(1, len(y) // 5)
    val, tr = perm[:n_val], perm[n_val:]
    model = tf.keras.Sequential([tf.keras.Input((x.shape[1],)), tf.keras.layers.Dense(classes, activation="sigmoid")])
    model.compile(tf.keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    stop = tf.keras.callbacks.EarlyStopping(patience=25, restore_best_weights=True)
    hist = model.fit(x[tr], onehot[tr], sample_weight=sample_w[tr], validation_data=(x[val], onehot[val]),
                     epochs=400, batch_size=64, verbose=0, callbacks=[stop])
    k, b = model.layers[-1].get_weights()
    return k, b, {"epochs": len(hist.history["loss"]), "val_loss": round(float(min(hist.history["val_loss"])), 4)}


def clip_report(patch_scores: list[np.ndarray], truth: list[int], names: list[str]) -> dict[str, Any]:
    """Clip-level accuracy (mean of patch scores per clip), per-class precision/recall, confusion matrix."""
    c = len(names)
    pred = [int(np.argmax(s[:, :c].mean(0))) for s in patch_scores]
    cm = np.zeros((c, c), np.int64)
    for t, p in zip(truth, pred, strict=True):
        cm[t, p] += 1
    per = {}
    for i, n in enumerate(names):
        tp = cm[i, i]
        per[n] = {"precision": round(float(tp / max(cm[:, i].sum(), 1)), 3),
                  "recall": round(float(tp / max(cm[i].sum(), 1)), 3), "clips": int(cm[i].sum())}
    return {"clips": len(truth), "accuracy": round(float(np.trace(cm) / max(len(truth), 1)), 4),
            "per_class": per, "confusion": cm.tolist()}


def confusion_table(report: dict[str, Any], names: list[str]) -> str:
    w = max(len(n) for n in names)
    head = " " * (w + 2) + " ".join(f"{n[:5]:>5}" for n in names)
    rows = [f"{n:<{w}}  " + " ".join(f"{v:>5}" for v in row) for n, row in zip(names, report["confusion"], strict=True)]
    return "\n".join([head, *rows])


def save_confusion_png(report: dict[str, Any], names: list[str], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cm = np.asarray(report["confusion"])
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(names), 1 + 0.55 * len(names)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_yticks(range(len(names)), names)
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: accuracy {report['accuracy']:.1%}")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return True


def train(weights_path: str, data: str | None, csv_path: str | None, audio_dir: str | None, where: dict[str, str],
          out_dir: str, keep: list[str], test_fraction: float, test_fold: str | None, seed: int,
          calib_count: int, audioset_labels: list[str] | None) -> dict[str, Any]:
    """`yamflash train`: a head for the clips' classes on YAMNet's embeddings (beside the AudioSet classes in
    ``keep``), exported INT8 through convert's write_model; model.json, training.json and confusion PNGs."""
    from ..cachedir import cache_root
    from ..convert import yamnet as conv
    from ..dataset import PatchSet
    from ..model.keras import build, float_scores
    from ..model.tflm import MicroModel
    from ..model.weights import load_weights

    t0 = time.monotonic()
    if bool(data) == bool(csv_path):
        raise UserError("pass exactly one of --data FOLDER (one subfolder per class) or --csv FILE.")
    clips = clips_from_folder(Path(data)) if data else clips_from_csv(Path(csv_path), Path(audio_dir) if audio_dir
                                                                       else None, where)
    names = sorted({c.label for c in clips})
    if len(clips) == 0:
        raise UserError("the dataset has no clips; check the folder or --where filter.")
    if len(names) < 2:
        raise UserError(f"only one class ({names[0]}); a detector needs at least two (add a background class).")
    train_idx, test_idx = split(clips, test_fraction, seed, test_fold)
    if not test_idx or not train_idx:
        raise UserError("cannot split the data into train and test; add more clips per class.")
    weights = load_weights(weights_path)
    y = np.array([names.index(c.label) for c in clips])
    mels, embs = embed(clips, weights, cache_root() / "embeddings")  # cached by content, shared with distill
    x_tr = np.concatenate([embs[i] for i in train_idx])
    y_tr = np.concatenate([[y[i]] * len(embs[i]) for i in train_idx])
    log(f"training a {len(names)}-class head on {len(x_tr)} patches from {len(train_idx)} clips")
    k, b, fit = train_head(x_tr, y_tr, len(names), seed)

    kept_idx: list[int] = []
    if keep:
        if audioset_labels is None:
            raise UserError("--keep needs YAMNet's class map: pass --labels yamnet_class_map.csv.")
        by_name = {lab.casefold(): i for i, lab in reversed(list(enumerate(audioset_labels)))}  # any case
        for name in keep:
            if name.strip().casefold() not in by_name:
                raise UserError(f"--keep {name!r} is not an AudioSet class name in the class map.")
            kept_idx.append(by_name[name.strip().casefold()])
    new = YamnetWeights(dict(weights.kernels), dict(weights.biases), weights.activation, dict(weights.source))
    new.kernels["logits"] = np.concatenate([k, weights.kernels["logits"][:, kept_idx]], axis=1).astype(np.float32)
    new.biases["logits"] = np.concatenate([b, weights.biases["logits"][kept_idx]]).astype(np.float32)
    labels = names + [audioset_labels[i] for i in kept_idx] if kept_idx else names
    new.validate()

    test_scores_float = [float_scores(build(new), mels[i]) for i in test_idx]
    truth = [int(y[i]) for i in test_idx]
    rep_float = clip_report(test_scores_float, truth, names)
    calib = np.concatenate([mels[i] for i in train_idx])
    calib = calib[np.sort(np.random.default_rng(seed).choice(len(calib), min(calib_count, len(calib)), replace=False))]
    ev = PatchSet(np.concatenate([mels[i] for i in test_idx]),
                  np.concatenate([[j] * len(mels[i]) for j, i in enumerate(test_idx)]),
                  [clips[i].path for i in test_idx])
    cal_info = {"seed": seed, "synthetic": False, "dir": data or csv_path, "files": len(train_idx),
                "patches": int(len(calib)), "eval_dir": "test split", "eval_files": len(test_idx),
                "eval_patches": int(len(ev.patches))}
    out = Path(out_dir)
    m = conv.write_model(new, labels, None, calib, ev, cal_info, out, t0)
    micro = MicroModel((out / "model.tflite").read_bytes())
    rep_int8 = clip_report([micro.run(mels[i]) for i in test_idx], truth, names)
    training = {"classes": names, "kept_audioset": [audioset_labels[i] for i in kept_idx] if kept_idx else [],
                "train_clips": len(train_idx), "test_clips": len(test_idx), "fit": fit,
                "split": "fold" if (test_fold or len({c.fold for c in clips if c.fold}) >= 2) else "grouped by source",
                "float": rep_float, "int8_tflm": rep_int8}
    m["training"] = training
    from ..manifest import dumps, write_all

    write_all({out / "model.json": dumps(m), out / "training.json": json.dumps(training, indent=2) + "\n"},
              flag="--out")
    save_confusion_png(rep_int8, names, out / "confusion_int8.png", "INT8 (TFLite Micro)")
    save_confusion_png(rep_float, names, out / "confusion_float.png", "float head")
    return m
