"""`yamflash distill`: a compact student that imitates YAMNet, given a head for your own classes.

The student is a depthwise-separable CNN on the same int8 96x64 log-mel patch with a 256-d embedding
(about 140 K parameters, ~9 M MACs against YAMNet's 3.7 M parameters and 69 M MACs), built only from
ops TFLite Micro has and ESP-NN accelerates, so gen/build/flash/monitor take it unchanged.

What it imitates: YAMNet's 1024-d embedding, through a learned 256 -> 1024 projection used only in
training, *and* YAMNet's 521 scores, by passing that projection through YAMNet's own frozen classifier.
The embedding is the richer target (the 521 logits are a rank-limited linear map of it, and the
head of `train` is trained on it); the score term weights the directions AudioSet's labels care about.

Data: unlabelled audio (by default every file beside the labelled set) minus every clip of the test
split -- by path, by content and by source group -- so the test clips are never seen, not even
without labels. Teacher outputs for a few augmented views per clip (time shift, gain, mixing two
clips, seeded) are computed once with the batched float YAMNet and cached under build/cache/distill.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import manifest
from .audio import list_audio, load_audio
from .errors import UserError
from .frontend import PARAMS, waveform_to_patches
from .progress import log, track
from .train import Clip, clip_report, clips_from_csv, clips_from_folder, save_confusion_png, split, train_head

# (pointwise filters, stride) per block; the first entry is a full 3x3 convolution on the 1-channel patch.
STUDENT_BLOCKS: tuple[tuple[int, int], ...] = (
    (16, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1))
EMBEDDING = 256
# Ops the student may contain once converted: what TFLite Micro has and ESP-NN accelerates (+ glue).
ALLOWED_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MEAN", "AVERAGE_POOL_2D", "RESHAPE",
                         "LOGISTIC"})
AUG_VERSION = 1  # bump when the augmented views change, so cached teacher outputs are recomputed


@dataclass(frozen=True)
class DistillConfig:
    epochs: int = 8
    views: int = 3  # per unlabelled clip: the clip itself plus views-1 augmented copies
    batch: int = 64
    lr: float = 3e-3
    score_weight: float = 1.0  # weight of the 521-score term beside the (normalized) embedding term
    calib_count: int = 500
    finetune_epochs: int = 30  # student + head on the labelled training clips after distillation (0: head only)
    seed: int = 0


def build_student(batch: int | None = None, name: str = "student") -> Any:
    """[b, 96, 64] float log-mel -> [b, 256] embedding; BatchNorm folds into the convolutions on export."""
    import tensorflow as tf

    L = tf.keras.layers

    def bn(name: str) -> Any:  # a short run: fast-moving statistics, or inference uses untrained ones
        return L.BatchNormalization(momentum=0.9, name=name)

    inp = tf.keras.Input((PARAMS.patch_frames, PARAMS.num_mel_bins), batch_size=batch, name="patch")
    x = L.Reshape((PARAMS.patch_frames, PARAMS.num_mel_bins, 1))(inp)
    (f0, s0), rest = STUDENT_BLOCKS[0], STUDENT_BLOCKS[1:]
    x = L.Conv2D(f0, 3, strides=s0, padding="same", use_bias=False, name="conv0")(x)
    x = L.ReLU(6.0)(bn(name="conv0_bn")(x))
    for i, (f, s) in enumerate(rest, start=1):
        x = L.DepthwiseConv2D(3, strides=s, padding="same", use_bias=False, name=f"dw{i}")(x)
        x = L.ReLU(6.0)(bn(name=f"dw{i}_bn")(x))
        x = L.Conv2D(f, 1, use_bias=False, name=f"pw{i}")(x)
        x = L.ReLU(6.0)(bn(name=f"pw{i}_bn")(x))
    emb = L.GlobalAveragePooling2D(name="embedding")(x)
    return tf.keras.Model(inp, emb, name=name)


def classifier(student: Any, kernel: np.ndarray, bias: np.ndarray, batch: int | None) -> Any:
    """Patch -> student -> Dense(C, sigmoid): the deployable model (batch 1 for export)."""
    import tensorflow as tf

    inp = tf.keras.Input((PARAMS.patch_frames, PARAMS.num_mel_bins), batch_size=batch, name="patch")
    dense = tf.keras.layers.Dense(kernel.shape[1], activation="sigmoid", name="head")
    model = tf.keras.Model(inp, dense(student(inp, training=False)))
    dense.set_weights([kernel, bias])
    return model


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unlabelled_files(dirs: list[Path], test: list[Clip], groups: dict[Path, str]) -> tuple[list[Path], int]:
    """Audio under ``dirs`` minus any test clip: same path, same content, or the same source group.

    ``groups`` maps resolved paths to source groups (e.g. ESC-50's src_file) for files the metadata names.
    Returns the kept files and how many were held out.
    """
    test_paths = {c.path.resolve() for c in test}
    test_groups = {c.group for c in test}
    test_hashes = {_sha(c.path) for c in test if c.path.is_file()}
    keep: dict[Path, Path] = {}
    held: set[Path] = set()
    for d in dirs:
        for f in list_audio(d):
            r = f.resolve()
            if r in keep or r in held:
                continue
            if r in test_paths or groups.get(r) in test_groups or _sha(f) in test_hashes:
                held.add(r)
            else:
                keep[r] = f
    if not keep:
        raise UserError("no unlabelled audio left after holding out the test clips; pass --unlabelled DIR.")
    return sorted(keep.values()), len(held)


def _views(wave: np.ndarray, pool: list[np.ndarray], rng: np.random.Generator, views: int) -> np.ndarray:
    """The clip's patches plus views-1 augmented copies: shifted patch grid, gain, and half of them mixed."""
    out = [waveform_to_patches(wave)]
    for _ in range(views - 1):
        x = wave[int(rng.integers(0, PARAMS.patch_hop_samples)):] * np.float32(10 ** (rng.uniform(-12, 6) / 20))
        if rng.random() < 0.5 and pool:
            other = pool[int(rng.integers(len(pool)))]
            n = min(len(x), len(other))
            x = x.copy()
            x[:n] += other[:n] * np.float32(10 ** (rng.uniform(-15, -3) / 20))
        out.append(waveform_to_patches(x))
    p = np.concatenate(out)
    # Digital silence (ESC-50 pads clips with zeros) gives identical constant patches: keep one.
    flat = p.reshape(len(p), -1).std(1) < 1e-3
    first_flat = np.flatnonzero(flat)[:1]
    return p[np.sort(np.concatenate([np.flatnonzero(~flat), first_flat]))]


def teacher_targets(files: list[Path], weights: Any, views: int, seed: int,
                    cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """[n, 96, 64] float16 patches and [n, 1024] YAMNet embeddings for the augmented views, cached."""
    import tensorflow as tf

    from .model import build

    h = hashlib.sha256(f"{weights.source.get('sha256', '')}|{views}|{seed}|{AUG_VERSION}".encode())
    for f in files:
        h.update(_sha(f).encode())
    path = cache / f"teacher-{h.hexdigest()[:24]}.npz"
    if path.is_file():
        z = np.load(path)
        log(f"teacher outputs from cache {path} ({len(z['emb'])} patches)")
        return z["mel"], z["emb"]
    waves = [load_audio(f) for f in track(files, "loading unlabelled audio")]
    rng = np.random.default_rng(seed)
    mels = np.concatenate([_views(w, waves, rng, views) for w in track(waves, "augmented log-mel views")])
    model = build(weights, outputs="embeddings_batch")
    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    chunks = range(0, len(mels), 128)
    emb = np.concatenate([fn(tf.constant(mels[i : i + 128])).numpy() for i in track(chunks, "YAMNet teacher")])
    mel16 = mels.astype(np.float16)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, mel=mel16, emb=emb.astype(np.float32))
    tmp.replace(path)
    return mel16, emb.astype(np.float32)


def fit_student(mels: np.ndarray, emb: np.ndarray, logits_w: np.ndarray, logits_b: np.ndarray,
                cfg: DistillConfig) -> tuple[Any, dict[str, Any]]:
    """Train the student (+ a 256 -> 1024 projection) to match YAMNet's embedding and scores."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(cfg.seed)
    L = tf.keras.layers
    # Standardized per dimension, so an MSE of 1 means "predicts YAMNet's mean embedding" whatever its scale;
    # YAMNet's classifier is re-expressed on the standardized embedding (W' = diag(std) W, b' = mean W + b).
    mu, sd = emb.mean(0), emb.std(0) + 1e-3
    z = ((emb - mu) / sd).astype(np.float32)
    t_scores = (0.5 * (1.0 + np.tanh(0.5 * (emb @ logits_w + logits_b)))).astype(np.float32)  # sigmoid, no overflow
    student = build_student()
    inp = tf.keras.Input((PARAMS.patch_frames, PARAMS.num_mel_bins))
    proj = L.Dense(emb.shape[1], name="proj")(student(inp))
    frozen = L.Dense(logits_w.shape[1], activation="sigmoid", trainable=False, name="yamnet_classifier")
    scores = frozen(proj)
    frozen.set_weights([sd[:, None] * logits_w, mu @ logits_w + logits_b])
    model = tf.keras.Model(inp, [proj, scores])
    steps = cfg.epochs * -(-len(mels) // cfg.batch)
    lr = tf.keras.optimizers.schedules.CosineDecay(cfg.lr, steps, alpha=0.02)
    model.compile(tf.keras.optimizers.Adam(lr), loss=["mse", "binary_crossentropy"],
                  loss_weights=[1.0, cfg.score_weight])
    t0 = time.monotonic()

    class Log(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            log(f"distill epoch {epoch + 1}/{cfg.epochs}: loss {logs['loss']:.4f} "  # type: ignore[index]
                f"({time.monotonic() - t0:.0f} s)")

    hist = model.fit(mels, [z, t_scores], batch_size=cfg.batch, epochs=cfg.epochs, shuffle=True, verbose=0,
                     callbacks=[Log()])
    pred_emb = model.predict(mels[:: max(1, len(mels) // 1000)], batch_size=256, verbose=0)[0] * sd + mu
    ref = emb[:: max(1, len(mels) // 1000)]
    cos = np.sum(pred_emb * ref, 1) / (np.linalg.norm(pred_emb, axis=1) * np.linalg.norm(ref, axis=1) + 1e-9)
    return student, {"patches": int(len(mels)), "epochs": cfg.epochs, "seconds": round(time.monotonic() - t0, 1),
                     "final_loss": round(float(hist.history["loss"][-1]), 4),
                     "train_embedding_cosine": round(float(cos.mean()), 4)}


def finetune(model: Any, x: np.ndarray, y: np.ndarray, cfg: DistillConfig) -> dict[str, Any]:
    """Student and head together on the labelled training patches, class-balanced, at a low rate.

    Distillation makes the student a general audio encoder; a few epochs of supervision then spend its
    small capacity on the classes at hand (the student starts from the distilled weights, so 29 clips suffice).
    """
    import tensorflow as tf

    c = int(model.output_shape[-1])
    counts = np.bincount(y, minlength=c).astype(np.float64)
    sample_w = (len(y) / (c * np.maximum(counts, 1)))[y]
    model.compile(tf.keras.optimizers.Adam(cfg.lr / 10), loss="binary_crossentropy")
    hist = model.fit(x, np.eye(c, dtype=np.float32)[y], sample_weight=sample_w, batch_size=32,
                     epochs=cfg.finetune_epochs, shuffle=True, verbose=0)
    return {"epochs": cfg.finetune_epochs, "loss": round(float(hist.history["loss"][-1]), 4)}


def to_int8(model: Any, calib: np.ndarray) -> bytes:
    """Plain post-training quantization: the ReLU6 student has bounded activations, so min/max is enough."""
    from .quantize import ptq_int8

    with contextlib.redirect_stdout(sys.stderr):  # export chatter; stdout is for --json
        return ptq_int8(model, calib)


def check_ops(ops: dict[str, int]) -> None:
    bad = sorted(set(ops) - ALLOWED_OPS)
    if bad:
        raise UserError(f"internal: the student converted to ops outside the ESP-NN set: {', '.join(bad)}")


def _labelled(data: str | None, csv_path: str | None, audio_dir: str | None,
              where: dict[str, str]) -> tuple[list[Clip], dict[Path, str], list[Path]]:
    """Labelled clips, source groups of every file the metadata names, default unlabelled folders."""
    if bool(data) == bool(csv_path):
        raise UserError("pass exactly one of --data FOLDER (one subfolder per class) or --csv FILE.")
    if data:
        clips = clips_from_folder(Path(data))
        return clips, {c.path.resolve(): c.group for c in clips}, [Path(data)]
    adir = Path(audio_dir) if audio_dir else None
    clips = clips_from_csv(Path(csv_path), adir, where)  # type: ignore[arg-type]
    every = clips_from_csv(Path(csv_path), adir, {})  # type: ignore[arg-type]
    dirs = sorted({c.path.parent for c in every})
    return clips, {c.path.resolve(): c.group for c in every}, dirs


def run(weights_path: str, data: str | None, csv_path: str | None, audio_dir: str | None, where: dict[str, str],
        unlabelled: list[str], out_dir: str, test_fraction: float, test_fold: str | None,
        cfg: DistillConfig) -> dict[str, Any]:
    """Distill, add a head, quantize, measure; write model.tflite + model.json + training.json at the end only."""
    from . import fidelity
    from .convert import model_record, tool_versions
    from .inspect_model import inspect
    from .model import float_scores
    from .tflm import MicroModel
    from .train import embed
    from .weights import load_weights

    t0 = time.monotonic()
    if min(cfg.epochs, cfg.views, cfg.batch, cfg.calib_count) < 1 or cfg.finetune_epochs < 0:
        raise UserError("--epochs, --views, --batch and --calib-count must be at least 1.")
    clips, groups, default_dirs = _labelled(data, csv_path, audio_dir, where)
    names = sorted({c.label for c in clips})
    if not clips:
        raise UserError("the dataset has no clips; check the folder or --where filter.")
    if len(names) < 2:
        raise UserError(f"only one class ({names[0]}); a detector needs at least two (add a background class).")
    train_idx, test_idx = split(clips, test_fraction, cfg.seed, test_fold)
    if not test_idx or not train_idx:
        raise UserError("cannot split the data into train and test; add more clips per class.")
    for c in clips:
        if not c.path.is_file():
            raise UserError(f"audio file {c.path} is missing; fix the CSV or the folder.")
    files, held = unlabelled_files([Path(u) for u in unlabelled] or default_dirs, [clips[i] for i in test_idx],
                                   groups)
    log(f"unlabelled: {len(files)} files ({held} held out as test clips); {len(train_idx)} train / "
        f"{len(test_idx)} test labelled clips")
    weights = load_weights(weights_path)
    mels_u, emb_u = teacher_targets(files, weights, cfg.views, cfg.seed, Path("build") / "cache" / "distill")
    student, fit_info = fit_student(mels_u, emb_u, weights.kernels["logits"], weights.biases["logits"], cfg)

    y = np.array([names.index(c.label) for c in clips])
    mels, _ = embed(clips, weights, Path("build") / "cache" / "embeddings")  # cached float YAMNet
    y_tr = np.concatenate([[y[i]] * len(mels[i]) for i in train_idx])
    s_tr = student.predict(np.concatenate([mels[i] for i in train_idx]), batch_size=256, verbose=0)
    log(f"training a {len(names)}-class head on {len(s_tr)} student embeddings")
    k, b, head_fit = train_head(s_tr, y_tr, len(names), cfg.seed)
    truth = [int(y[i]) for i in test_idx]
    float_model = classifier(student, k, b, None)
    if cfg.finetune_epochs:
        head_fit["finetune"] = finetune(float_model, np.concatenate([mels[i] for i in train_idx]), y_tr, cfg)
        k, b = float_model.get_layer("head").get_weights()
    rep_float = clip_report([float_scores(float_model, mels[i]) for i in test_idx], truth, names)

    rng = np.random.default_rng(cfg.seed)
    pool = mels_u[np.sort(rng.choice(len(mels_u), min(cfg.calib_count, len(mels_u)), replace=False))]
    log(f"quantizing to int8 with {len(pool)} representative patches (plain min/max post-training)")
    t_q = time.monotonic()
    tflite = to_int8(classifier(student, k, b, 1), pool)
    t_q = time.monotonic() - t_q
    with tempfile.TemporaryDirectory() as td:
        (Path(td) / "model.tflite").write_bytes(tflite)
        report = inspect(Path(td) / "model.tflite")
    check_ops(report["op_counts"])
    micro = MicroModel(tflite)
    so, zo = micro.output_quant
    if abs(so - 1 / 256) > 1e-9 or zo != -128:
        raise UserError(f"internal: sigmoid output quantized as scale {so}, zero point {zo}; expected 1/256, -128.")
    int8_scores = [micro.run(mels[i]) for i in test_idx]
    rep_int8 = clip_report(int8_scores, truth, names)
    fid = fidelity.compare(np.concatenate([float_scores(float_model, mels[i]) for i in test_idx]),
                           np.concatenate(int8_scores)) | {"eval": "test split"}
    training = {
        "kind": "distilled student", "classes": names, "kept_audioset": [], "train_clips": len(train_idx),
        "test_clips": len(test_idx),
        "split": "fold" if (test_fold or len({c.fold for c in clips if c.fold}) >= 2) else "grouped by source",
        "student": {"blocks": [list(s) for s in STUDENT_BLOCKS], "embedding": EMBEDDING,
                    "activation": "relu6", "float_parameters": int(student.count_params())},
        "distill": fit_info | {"unlabelled_files": len(files), "held_out_test_files": held, "views": cfg.views,
                               "targets": "YAMNet 1024-d embedding (via 256->1024 projection) + 521 scores"},
        "config": asdict(cfg), "fit": head_fit,
        "float": rep_float, "int8_tflm": rep_int8,
    }
    m = model_record(tflite, report, micro, names, data or csv_path) | {
        "weights": {"format": "distilled student", "teacher": {k_: v for k_, v in weights.source.items()
                                                                if k_ != "path"}, "activation": "relu6"},
        "calibration": {"seed": cfg.seed, "synthetic": False, "dir": "unlabelled set (test clips held out)",
                        "files": len(files), "patches": int(len(pool)), "eval_dir": "test split",
                        "eval_files": len(test_idx), "eval_patches": int(sum(len(mels[i]) for i in test_idx)),
                        "recipe": "ptq-minmax", "calibration_patches": int(len(pool))},
        "fidelity": fid,
        "convert_seconds": round(time.monotonic() - t0, 1),
        "quantize_seconds": round(t_q, 1),
        "tool_versions": tool_versions(),
        "training": training,
    }
    out = Path(out_dir)
    manifest.atomic_write(out / "model.tflite", tflite)
    manifest.write(out / "model.json", m)
    manifest.atomic_write(out / "training.json", json.dumps(training, indent=2) + "\n")
    save_confusion_png(rep_int8, names, out / "confusion_int8.png", "student INT8 (TFLite Micro)")
    save_confusion_png(rep_float, names, out / "confusion_float.png", "student float")
    return m
