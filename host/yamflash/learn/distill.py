"""`yamflash distill`: a compact student that imitates YAMNet, given a head for your own classes.

The student is a depthwise-separable CNN on the same int8 96x64 log-mel patch with a 256-d embedding:
YAMNet's own first seven layers, narrowed where the 48x32 maps would overflow a 128 KiB arena and at the
end (about 180 K parameters, 21 M MACs against YAMNet's 3.7 M parameters and 69 M MACs), built only from
ops TFLite Micro has and ESP-NN accelerates, so gen/build/flash/monitor take it unchanged.

It starts as a cut-out of YAMNet, not from random weights: per layer it keeps the channels that best span
YAMNet's, copies their BN-folded kernels and refits what the cut changed by least squares to YAMNet's
activations on unlabelled patches (``init_from_teacher``). Trained from scratch on the few thousand
unlabelled patches at hand, the same budget stays near 55 % on ESC-10; cut out, it starts where a linear
probe of YAMNet's layer 7 is (~87 %).

Then it imitates YAMNet's 1024-d embedding, through a 256 -> 1024 projection used only in training
(started as the least-squares map), *and* YAMNet's 521 scores, by passing that projection through
YAMNet's own frozen classifier, at a low rate so the cut-out's features are refined, not relearnt.
The embedding is the richer target (the 521 logits are a rank-limited linear map of it, and the
head of `train` is trained on it); the score term weights the directions AudioSet's labels care about.

Data: unlabelled audio (by default every file beside the labelled set) minus every clip of the test
split -- by path, by content and by source group -- so the test clips are never seen, not even
without labels. Teacher outputs for a few augmented views per clip (time shift, gain, mixing two
clips, seeded) are computed once with the batched float YAMNet and cached under build/cache/distill.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..frontend import PARAMS
from ..progress import captured_chatter, log
from .config import DistillConfig
from .student import (
    ALLOWED_OPS,
    EMBEDDING,
    STUDENT_WIDTHS,
    _ridge,
    build_student,
    classifier,
    init_from_teacher,
)
from .teacher import (
    _held,
    all_unlabelled,
    teacher_targets,
    usable,
)
from .train import Clip, clip_report, clips_from_csv, clips_from_folder, save_confusion_png, split

Projection = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # kernel, bias, embedding mean, std


def fit_student(mels: np.ndarray, emb: np.ndarray, weights: Any,
                cfg: DistillConfig) -> tuple[Any, Projection, dict[str, Any]]:
    """Cut the student out of YAMNet, then train it (+ a 256 -> 1024 projection) to match YAMNet's embedding
    and scores. Returns the student, the projection onto YAMNet's embedding and what it took."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(cfg.seed)
    L = tf.keras.layers
    logits_w, logits_b = weights.kernels["logits"], weights.biases["logits"]
    t0 = time.monotonic()
    rng = np.random.default_rng(cfg.seed)
    sub = np.sort(rng.choice(len(mels), min(cfg.init_patches, len(mels)), replace=False))
    log(f"cutting the student out of YAMNet on {len(sub)} unlabelled patches")
    student = build_student()
    for name, w in init_from_teacher(weights, mels[sub]).items():
        student.get_layer(name).set_weights(w)
    t_init = time.monotonic() - t0
    # Standardized per dimension, so an MSE of 1 means "predicts YAMNet's mean embedding" whatever its scale;
    # YAMNet's classifier is re-expressed on the standardized embedding (W' = diag(std) W, b' = mean W + b).
    mu, sd = emb.mean(0), emb.std(0) + 1e-3
    z = ((emb - mu) / sd).astype(np.float32)
    t_scores = (0.5 * (1.0 + np.tanh(0.5 * (emb @ logits_w + logits_b)))).astype(np.float32)  # sigmoid, no overflow
    inp = tf.keras.Input((PARAMS.patch_frames, PARAMS.num_mel_bins))
    proj = L.Dense(emb.shape[1], name="proj")
    pz = proj(student(inp))
    frozen = L.Dense(logits_w.shape[1], activation="sigmoid", trainable=False, name="yamnet_classifier")
    scores = frozen(pz)
    frozen.set_weights([sd[:, None] * logits_w, mu @ logits_w + logits_b])
    model = tf.keras.Model(inp, [pz, scores])
    # The projection starts as the least-squares map from the cut student's embedding to YAMNet's.
    every = np.arange(0, len(mels), max(1, len(mels) // 4000))
    s = np.concatenate([student.predict(mels[every], batch_size=256, verbose=0), np.ones((len(every), 1))], 1)
    p = _ridge(s.T.astype(np.float64) @ s, s.T.astype(np.float64) @ z[every], 1e-3)
    proj.set_weights([p[:-1].astype(np.float32), p[-1].astype(np.float32)])
    final_loss = None
    if cfg.epochs:
        steps = cfg.epochs * -(-len(mels) // cfg.batch)
        lr = tf.keras.optimizers.schedules.CosineDecay(cfg.lr, steps, alpha=0.02)
        model.compile(tf.keras.optimizers.Adam(lr), loss=["mse", "binary_crossentropy"],
                      loss_weights=[1.0, cfg.score_weight])
        t1 = time.monotonic()

        class Log(tf.keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                log(f"distill epoch {epoch + 1}/{cfg.epochs}: loss {logs['loss']:.4f} "  # type: ignore[index]
                    f"({time.monotonic() - t1:.0f} s)")

        hist = model.fit(mels, [z, t_scores], batch_size=cfg.batch, epochs=cfg.epochs, shuffle=True, verbose=0,
                         callbacks=[Log()])
        final_loss = round(float(hist.history["loss"][-1]), 4)
    pred_emb = model.predict(mels[:: max(1, len(mels) // 1000)], batch_size=256, verbose=0)[0] * sd + mu
    ref = emb[:: max(1, len(mels) // 1000)]
    cos = np.sum(pred_emb * ref, 1) / (np.linalg.norm(pred_emb, axis=1) * np.linalg.norm(ref, axis=1) + 1e-9)
    pw, pb = proj.get_weights()
    return student, (pw, pb, mu, sd), {
                     "patches": int(len(mels)), "epochs": cfg.epochs, "seconds": round(time.monotonic() - t0, 1),
                     "init": "cut from YAMNet", "init_patches": int(len(sub)), "init_seconds": round(t_init, 1),
                     "final_loss": final_loss, "train_embedding_cosine": round(float(cos.mean()), 4)}


def composed_head(proj: Projection, kernel: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A head trained on YAMNet's 1024-d embedding, read through the student's projection onto it: one
    Dense(256 -> C) (both maps are linear, so they fold into one).

    Why: the labelled clips are few. A head fitted on the student's own 256-d features learns whatever
    separates those clips, including what the small student got wrong; fitted on YAMNet's embeddings (what
    `train` does, 95 %+ on held-out recordings) it only asks the student to imitate YAMNet, which it was
    trained to do on every unlabelled view.
    """
    pw, pb, mu, sd = proj
    k = (pw * sd[None, :]) @ kernel
    b = (pb * sd + mu) @ kernel + bias
    return k.astype(np.float32), b.astype(np.float32)


def linear_head(x: np.ndarray, y: np.ndarray, classes: int, l2: float, steps: int = 200) -> tuple[np.ndarray,
                                                                                                 np.ndarray]:
    """Dense(C, sigmoid) by class-balanced binary cross-entropy with an L2 penalty (on standardized inputs,
    folded back into the kernel), full-batch Adam in numpy: the few labelled clips need a strong prior more
    than early stopping on a random slice of their own patches."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    xs = ((x - mean) / std).astype(np.float64)
    counts = np.bincount(y, minlength=classes)
    sw = (len(y) / (classes * np.maximum(counts, 1)))[y][:, None]
    target = np.eye(classes)[y]
    w, b = np.zeros((x.shape[1], classes)), np.zeros(classes)
    mw, vw, mb, vb = np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
    for i in range(1, steps + 1):
        p = 0.5 * (1.0 + np.tanh(0.5 * (xs @ w + b)))
        g = sw * (p - target) / len(y)
        gw, gb = xs.T @ g + l2 * w, g.sum(0)
        mw, vw = 0.9 * mw + 0.1 * gw, 0.999 * vw + 0.001 * gw**2
        mb, vb = 0.9 * mb + 0.1 * gb, 0.999 * vb + 0.001 * gb**2
        w -= 0.01 * (mw / (1 - 0.9**i)) / (np.sqrt(vw / (1 - 0.999**i)) + 1e-8)
        b -= 0.01 * (mb / (1 - 0.9**i)) / (np.sqrt(vb / (1 - 0.999**i)) + 1e-8)
    return (w / std[:, None]).astype(np.float32), (b - (mean / std) @ w).astype(np.float32)


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
    """Plain min/max post-training quantization. The cut-out student has no equalization step; on the ESC-10
    bench its INT8 clip accuracy equals its float one (scripts/bench_custom.py)."""
    from ..quant.recipes import ptq_int8

    with captured_chatter():
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


@dataclass
class _Setup:
    clips: list[Clip]
    names: list[str]
    y: np.ndarray
    groups: dict[Path, str]
    files: list[Path]  # every unlabelled file; each run holds out its test clips from them
    teacher: dict[str, np.ndarray]
    weights: Any
    mels: list[np.ndarray]  # labelled clips' patches
    embs: list[np.ndarray]  # and YAMNet's embeddings of them


def _prepare(weights_path: str, data: str | None, csv_path: str | None, audio_dir: str | None,
             where: dict[str, str], unlabelled: list[str], cfg: DistillConfig, cv_folds: int | None) -> _Setup:
    from ..cachedir import cache_root
    from ..model.weights import load_weights
    from .train import embed

    if min(cfg.views, cfg.batch, cfg.calib_count, cfg.init_patches) < 1 or min(cfg.epochs, cfg.finetune_epochs) < 0:
        raise UserError("--views, --batch and --calib-count must be at least 1; --epochs and --finetune-epochs 0 "
                        "or more.")
    clips, groups, default_dirs = _labelled(data, csv_path, audio_dir, where)
    if not clips:
        raise UserError("the dataset has no clips; check the folder or --where filter.")
    names = sorted({c.label for c in clips})
    if len(names) < 2:
        raise UserError(f"only one class ({names[0]}); a detector needs at least two (add a background class).")
    for c in clips:
        if not c.path.is_file():
            raise UserError(f"audio file {c.path} is missing; fix the CSV or the folder.")
    if cv_folds is not None:
        from .cv import group_folds

        group_folds(clips, cv_folds, cfg.seed)  # a bad K fails here, before any teacher or training time
    files = all_unlabelled([Path(u) for u in unlabelled] or default_dirs)
    if not files:
        raise UserError("no unlabelled audio found; pass --unlabelled DIR.")
    weights = load_weights(weights_path)
    teacher = teacher_targets(files, weights, cfg.views, cfg.seed)
    mels, embs = embed(clips, weights, cache_root() / "embeddings")  # cached float YAMNet
    y = np.array([names.index(c.label) for c in clips])
    return _Setup(clips, names, y, groups, files, teacher, weights, mels, embs)


def _fit(st: _Setup, train_idx: list[int], test_idx: list[int], cfg: DistillConfig) -> dict[str, Any]:
    """Student (on the unlabelled views that hold no test audio), composed head, INT8 model."""
    held = _held(st.files, [st.clips[i] for i in test_idx], st.groups)
    ok = usable(st.teacher, held)
    if not ok.any():
        raise UserError("no unlabelled audio left after holding out the test clips; pass --unlabelled DIR.")
    log(f"unlabelled: {len(st.files) - int(held.sum())} files, {int(ok.sum())} patches ({int(held.sum())} files "
        f"held out as test clips); {len(train_idx)} train / {len(test_idx)} test labelled clips")
    mels_u = st.teacher["mel"][ok].astype(np.float32)
    student, proj, fit_info = fit_student(mels_u, st.teacher["emb"][ok], st.weights, cfg)
    y_tr = np.concatenate([[st.y[i]] * len(st.mels[i]) for i in train_idx])
    c = len(st.names)
    # Head = mean of two linear heads on the student's embedding (one Dense once folded): YAMNet's embedding
    # head read through the projection, and a strongly regularized head on the student's own features of every
    # augmented view of the training clips (those the unlabelled set holds; else their plain patches).
    k0, b0 = linear_head(np.concatenate([st.embs[i] for i in train_idx]), y_tr, c, cfg.head_l2_teacher)
    kc, bc = composed_head(proj, k0, b0)
    own = {f.resolve(): j for j, f in enumerate(st.files)}
    clip_of = {own[st.clips[i].path.resolve()]: i for i in train_idx if st.clips[i].path.resolve() in own}
    views_ok = ok & np.isin(st.teacher["owner"], list(clip_of))
    if views_ok.any():
        x_s = student.predict(st.teacher["mel"][views_ok].astype(np.float32), batch_size=256, verbose=0)
        y_s = st.y[[clip_of[int(o)] for o in st.teacher["owner"][views_ok]]]
    else:
        x_s = student.predict(np.concatenate([st.mels[i] for i in train_idx]), batch_size=256, verbose=0)
        y_s = y_tr
    log(f"training a {c}-class head: YAMNet's embeddings of {len(y_tr)} labelled patches, the student's of "
        f"{len(y_s)} labelled views")
    ks, bs = linear_head(x_s, y_s, c, cfg.head_l2_student)
    k, b = (kc + ks) / 2, (bc + bs) / 2
    head_fit = {"head": "mean of YAMNet-embedding head through the projection and student-feature head",
                "teacher_patches": int(len(y_tr)), "student_views": int(len(y_s)),
                "l2": [cfg.head_l2_teacher, cfg.head_l2_student]}
    float_model = classifier(student, k, b, None)
    if cfg.finetune_epochs:
        head_fit["finetune"] = finetune(float_model, np.concatenate([st.mels[i] for i in train_idx]), y_tr, cfg)
        k, b = float_model.get_layer("head").get_weights()
    rng = np.random.default_rng(cfg.seed)
    pool = mels_u[np.sort(rng.choice(len(mels_u), min(cfg.calib_count, len(mels_u)), replace=False))]
    log(f"quantizing to int8 with {len(pool)} representative patches (plain min/max post-training)")
    t_q = time.monotonic()
    tflite = to_int8(classifier(student, k, b, 1), pool)
    return {"student": student, "float_model": float_model, "tflite": tflite, "fit": fit_info,
            "head_fit": head_fit, "pool": pool, "quantize_seconds": round(time.monotonic() - t_q, 1),
            "unlabelled_files": len(st.files) - int(held.sum()), "held": int(held.sum())}


def cross_validate(st: _Setup, k: int, cfg: DistillConfig) -> dict[str, Any]:
    """Every labelled clip scored once by an INT8 student (TFLite Micro) that never heard its source."""
    from ..model.keras import float_scores
    from ..model.tflm import MicroModel
    from . import cv

    folds = cv.group_folds(st.clips, k, cfg.seed)
    int8_scores: dict[int, np.ndarray] = {}
    float_scores_: dict[int, np.ndarray] = {}
    per_fold = []
    for f in range(k):
        train_idx, test_idx = cv.fold_split(folds, f)
        log(f"cross-validation fold {f + 1}/{k}: {len(test_idx)} test clips")
        t0 = time.monotonic()
        r = _fit(st, train_idx, test_idx, cfg)
        micro = MicroModel(r["tflite"])
        for i in test_idx:
            int8_scores[i] = micro.run(st.mels[i])
            float_scores_[i] = float_scores(r["float_model"], st.mels[i])
        hits = [int(np.argmax(int8_scores[i].mean(0)[: len(st.names)])) == st.y[i] for i in test_idx]
        per_fold.append({"fold": f, "clips": len(test_idx), "correct": int(sum(hits)),
                         "accuracy": round(sum(hits) / len(test_idx), 4), "seconds": round(time.monotonic() - t0, 1),
                         "test_groups": sorted({st.clips[i].group for i in test_idx})})
        log(f"fold {f + 1}/{k}: {sum(hits)}/{len(test_idx)} INT8 ({per_fold[-1]['seconds']:.0f} s)")
    order = sorted(int8_scores)
    truth = [int(st.y[i]) for i in order]
    pred = [int(np.argmax(int8_scores[i].mean(0)[: len(st.names)])) for i in order]
    summary = cv.summarize(per_fold, truth, pred, [st.clips[i].group for i in order], st.names)
    return summary | {"metric": "clip accuracy, INT8 in TFLite Micro, mean of patch scores",
                      "int8_tflm": clip_report([int8_scores[i] for i in order], truth, st.names),
                      "float": clip_report([float_scores_[i] for i in order], truth, st.names)}


def distill(weights_path: str, data: str | None, csv_path: str | None, audio_dir: str | None,
            where: dict[str, str], unlabelled: list[str], out_dir: str, test_fraction: float, test_fold: str | None,
            cfg: DistillConfig, cv_folds: int | None = None) -> dict[str, Any]:
    """Distill, add a head, quantize, measure; write model.tflite + model.json + training.json at the end only.

    With ``cv_folds``, the accuracy is first measured by that many folds over source recordings, then the
    written model is trained on every labelled clip (its report is the cross-validated one)."""
    from ..convert.export import prepare, tool_versions
    from ..model import fidelity
    from ..model.keras import float_scores
    from ..target.layout import choose as choose_layout
    from ..target.layout import confirm as confirm_layout
    from . import cv

    t0 = time.monotonic()
    if cv_folds is not None and cv_folds < 2:
        raise UserError(f"--cv {cv_folds}: cross-validation needs at least 2 folds.")
    st = _prepare(weights_path, data, csv_path, audio_dir, where, unlabelled, cfg, cv_folds)
    clips, names = st.clips, st.names
    cv_report = None
    if cv_folds is not None:
        cv_report = cross_validate(st, cv_folds, cfg)
        log(cv.format_summary(cv_report, "student INT8"))
        train_idx, test_idx = list(range(len(clips))), []
    else:
        train_idx, test_idx = split(clips, test_fraction, cfg.seed, test_fold)
        if not test_idx or not train_idx:
            raise UserError("cannot split the data into train and test; add more clips per class.")
    r = _fit(st, train_idx, test_idx, cfg)
    student, float_model, tflite = r["student"], r["float_model"], r["tflite"]
    # The held-out clips check the INT8 model; a --cv run has none left, so its training clips do (labelled so).
    eval_idx = test_idx or train_idx
    eval_name = "test split" if test_idx else "labelled clips (trained on: --cv run)"
    # The chip layout's bit-exact rewrites (target/layout.py), checked on real patches.
    tflite, chip_layout = choose_layout(tflite, np.concatenate([st.mels[i] for i in eval_idx]), log)
    exp = prepare(tflite, names, data or csv_path, log)  # the TFLite Micro check, model.json's common fields
    check_ops(exp.report["op_counts"])
    micro = exp.micro
    so, zo = micro.output_quant
    if abs(so - 1 / 256) > 1e-9 or zo != -128:
        raise UserError(f"internal: sigmoid output quantized as scale {so}, zero point {zo}; expected 1/256, -128.")
    int8_scores = [micro.run(st.mels[i]) for i in eval_idx]
    f_scores = [float_scores(float_model, st.mels[i]) for i in eval_idx]
    fid = fidelity.compare(np.concatenate(f_scores), np.concatenate(int8_scores)) | {"eval": eval_name}
    if cv_report is not None:
        rep_float, rep_int8 = cv_report["float"], cv_report["int8_tflm"]
        split_name = f"{cv_folds}-fold cross-validation by source"
    else:
        truth = [int(st.y[i]) for i in test_idx]
        rep_float, rep_int8 = clip_report(f_scores, truth, names), clip_report(int8_scores, truth, names)
        split_name = "fold" if (test_fold or len({c.fold for c in clips if c.fold}) >= 2) else "grouped by source"
    training = {
        "kind": "distilled student", "classes": names, "kept_audioset": [], "train_clips": len(train_idx),
        "test_clips": len(test_idx) if cv_report is None else cv_report["clips"], "split": split_name,
        "student": {"widths": list(STUDENT_WIDTHS), "yamnet_layers": len(STUDENT_WIDTHS), "embedding": EMBEDDING,
                    "activation": "relu", "float_parameters": int(student.count_params())},
        "distill": r["fit"] | {"unlabelled_files": r["unlabelled_files"], "held_out_test_files": r["held"],
                               "views": cfg.views,
                               "targets": "YAMNet 1024-d embedding (via 256->1024 projection) + 521 scores"},
        "config": asdict(cfg), "fit": r["head_fit"],
        "float": rep_float, "int8_tflm": rep_int8,
    }
    if cv_report is not None:
        training["cv"] = {k_: v for k_, v in cv_report.items() if k_ not in ("float", "int8_tflm")}
    fields = {
        "weights": {"format": "distilled student", "teacher": {k_: v for k_, v in st.weights.source.items()
                                                                if k_ != "path"}, "activation": "relu"},
        "calibration": {"seed": cfg.seed, "synthetic": False, "dir": "unlabelled set (test clips held out)",
                        "files": r["unlabelled_files"], "patches": int(len(r["pool"])), "eval_dir": eval_name,
                        "eval_files": len(eval_idx), "eval_patches": int(sum(len(st.mels[i]) for i in eval_idx)),
                        "recipe": "ptq-minmax", "calibration_patches": int(len(r["pool"]))},
        "fidelity": fid,
        "convert_seconds": round(time.monotonic() - t0, 1),
        "quantize_seconds": r["quantize_seconds"],
        "tool_versions": tool_versions(),
        "training": training,
    }
    fields["layout"] = confirm_layout(chip_layout, exp.record.get("arena"), len(exp.tflite))
    m = exp.write(out_dir, fields, files={"training.json": json.dumps(training, indent=2) + "\n"})
    out = Path(out_dir)
    save_confusion_png(rep_int8, names, out / "confusion_int8.png", "student INT8 (TFLite Micro)")
    save_confusion_png(rep_float, names, out / "confusion_float.png", "student float")
    return m
