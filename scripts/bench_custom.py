"""Issue 15's honest measurement: `train` (full YAMNet + head) and `distill` (compact INT8 student) scored by
cross-validation over source recordings on every ESC-10 clip of ../shared/data.

Folds keep each ESC-50 ``src_file`` on one side (learn/cv.py), so no test clip's recording is heard in
training, not even as unlabelled audio. Per model: per-fold accuracy, the pooled accuracy over all clips with
a 95 % Wilson interval (clips as independent draws) and a 95 % bootstrap interval resampling whole source
recordings (the honest one: clips of one recording agree), fold mean and spread, the pooled confusion matrix
(PNG + JSON). The student is scored INT8 in TFLite Micro; `train`'s head is scored in float on YAMNet's float
embeddings (an INT8 conversion per fold would take ~5 minutes each; its single-split INT8 figure equals its
float one). Then the student's budgets: weights <= 256 KiB, chip arena (ESP-NN scratch included, the -m32
build where gcc-multilib is installed, else the 64-bit one, else the host bound) <= 128 KiB.

    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python scripts/bench_custom.py [--folds 5] [--reuse]

Writes build/bench/custom.json (+ custom-confusion-{train,distill}.png/.json) and prints a table; exits 1
when the student is under 85 %, over a budget, or `train` is under 90 %.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("YAMFLASH_DATA", ROOT.parent / "shared" / "data"))
KIB = 1024
STUDENT_MIN, FULL_MIN = 0.85, 0.90
WEIGHTS_MAX, ARENA_MAX = 256 * KIB, 128 * KIB


def verdict(name: str, accuracy: float, minimum: float, weights_bytes: int | None = None,
            arena_bytes: int | None = None) -> list[str]:
    """What a model misses: accuracy under its minimum, weights or chip arena over budget (empty: all met)."""
    miss = []
    if accuracy < minimum:
        miss.append(f"{name}: cross-validated accuracy {accuracy:.1%} < {minimum:.0%}")
    if weights_bytes is not None and weights_bytes > WEIGHTS_MAX:
        miss.append(f"{name}: weights {weights_bytes:,} B > {WEIGHTS_MAX:,} B")
    if arena_bytes is not None and arena_bytes > ARENA_MAX:
        miss.append(f"{name}: chip arena {arena_bytes:,} B > {ARENA_MAX:,} B")
    return miss


def train_cv(weights_path: str, csv_path: str, k: int, seed: int) -> dict[str, Any]:
    """`train`'s recipe (Dense head on YAMNet's float embeddings) scored fold by fold on the held-out clips."""
    import numpy as np
    from yamflash.cachedir import cache_root
    from yamflash.learn import cv
    from yamflash.learn.train import clip_report, clips_from_csv, embed, train_head
    from yamflash.model.weights import load_weights

    clips = clips_from_csv(Path(csv_path), None, {"esc10": "True"})
    names = sorted({c.label for c in clips})
    y = np.array([names.index(c.label) for c in clips])
    _, embs = embed(clips, load_weights(weights_path), cache_root() / "embeddings")
    folds = cv.group_folds(clips, k, seed)
    scores: dict[int, np.ndarray] = {}
    per_fold = []
    for f in range(k):
        tr, te = cv.fold_split(folds, f)
        t0 = time.monotonic()
        kern, bias, _ = train_head(np.concatenate([embs[i] for i in tr]),
                                   np.concatenate([[y[i]] * len(embs[i]) for i in tr]), len(names), seed)
        for i in te:
            scores[i] = 1 / (1 + np.exp(-(embs[i] @ kern + bias)))
        hits = [int(np.argmax(scores[i].mean(0))) == y[i] for i in te]
        per_fold.append({"fold": f, "clips": len(te), "correct": int(sum(hits)),
                         "accuracy": round(sum(hits) / len(te), 4), "seconds": round(time.monotonic() - t0, 1),
                         "test_groups": sorted({clips[i].group for i in te})})
    order = sorted(scores)
    truth = [int(y[i]) for i in order]
    pred = [int(np.argmax(scores[i].mean(0))) for i in order]
    return cv.summarize(per_fold, truth, pred, [clips[i].group for i in order], names) | {
        "metric": "clip accuracy, float head on float YAMNet embeddings, mean of patch scores",
        "float": clip_report([scores[i] for i in order], truth, names)}


def chip_arena(model_dir: Path) -> dict[str, Any]:
    """The student's chip arena: -m32 build where it can be made, else model.json's 64-bit chip figure, else
    the host figure + largest ESP-NN scratch (a bound, labelled so)."""
    from yamflash.errors import UserError
    from yamflash.target import arena
    from yamflash.target import chip_arena as ca

    m = json.loads((model_dir / "model.json").read_text())
    model = (model_dir / "model.tflite").read_bytes()
    rec = m.get("arena") or {}
    out: dict[str, Any] = {"host_reference": m["arena_bytes"], "chip_espnn_64bit": rec.get("chip_espnn")}
    if ca.sdk_dir() is not None:
        try:
            with tempfile.TemporaryDirectory() as td:
                plan = ca.measuring_plan(m, model, Path(td))
                out["chip_espnn_m32"] = ca.measure_32bit(ca.write_headers(plan, Path(td) / "g"), model)["used"]
        except (UserError, OSError, subprocess.SubprocessError) as exc:  # e.g. no gcc-multilib
            out["m32_error"] = str(exc)[:300]
    if out.get("chip_espnn_m32"):
        out.update(bytes=out["chip_espnn_m32"], which="chip, 32-bit build (-m32), ESP-NN scratch included")
    elif out["chip_espnn_64bit"]:
        out.update(bytes=out["chip_espnn_64bit"], which="chip, 64-bit host build, ESP-NN scratch included")
    else:
        need = arena.chip_need(m, model)
        out.update(bytes=need.bytes, which=f"bound: {need.source}")
    return out


def save_confusion(s: dict[str, Any], stem: Path, title: str) -> None:
    from yamflash.learn.train import save_confusion_png
    from yamflash.manifest import atomic_write

    atomic_write(stem.with_suffix(".json"), json.dumps({"classes": s["classes"], "rows": "true class",
                                                        "columns": "predicted", "confusion": s["confusion"]},
                                                       indent=2) + "\n")
    save_confusion_png({"confusion": s["confusion"], "accuracy": s["accuracy"]}, s["classes"],
                       stem.with_suffix(".png"), title)


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT / "host"))
    from yamflash.learn.cv import format_summary
    from yamflash.manifest import atomic_write

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=str(DATA / "models" / "yamnet_keras_drq_logmel_out.tflite"))
    ap.add_argument("--csv", default=str(DATA / "audio" / "esc50-16k-dev" / "meta" / "esc50.csv"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse", action="store_true",
                    help="reuse build/esc10-distill-cv/model.json and custom-train.json beside --out when present")
    ap.add_argument("--only-train", action="store_true", help="score train only, write custom-train.json, stop")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench" / "custom.json"))
    args = ap.parse_args(argv)
    out = Path(args.out)

    train_json = out.with_name("custom-train.json")
    if args.reuse and train_json.is_file():
        full = json.loads(train_json.read_text())
    else:
        t0 = time.monotonic()
        full = train_cv(args.weights, args.csv, args.folds, args.seed)
        full["seconds"] = round(time.monotonic() - t0, 1)
        atomic_write(train_json, json.dumps(full, indent=2) + "\n")
    if args.only_train:
        print(format_summary(full, "train"))
        return 0 if not verdict("train", full["accuracy"], FULL_MIN) else 1
    student_dir = ROOT / "build" / "esc10-distill-cv"
    seconds = None
    if not (args.reuse and (student_dir / "model.json").is_file()):
        cmd = [sys.executable, "-m", "yamflash", "distill", "--weights", args.weights, "--csv", args.csv,
               "--where", "esc10=True", "--unlabelled", str(DATA / "audio"), "--seed", str(args.seed),
               "--cv", str(args.folds), "--out", str(student_dir)]
        print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
        t1 = time.monotonic()
        p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"})
        if p.returncode != 0:
            raise SystemExit(f"bench_custom: distill failed with exit code {p.returncode}")
        seconds = round(time.monotonic() - t1, 1)
    m = json.loads((student_dir / "model.json").read_text())
    t = m["training"]
    student = t["cv"] | {"seconds_total": seconds, "final_fit_seconds": t["distill"]["seconds"],
                         "fold_seconds": [f["seconds"] for f in t["cv"]["folds"]]}
    arena = chip_arena(student_dir)
    budgets = {"weights_bytes": m["model"]["bytes"], "weights_max": WEIGHTS_MAX, "arena": arena,
               "arena_max": ARENA_MAX, "parameters": m["parameters"], "macs_per_patch": m["macs_per_patch"]}
    miss = verdict("distill", student["accuracy"], STUDENT_MIN, m["model"]["bytes"], arena["bytes"]) + \
        verdict("train", full["accuracy"], FULL_MIN)
    report = {"schema": 2, "kind": "yamflash-bench-custom", "data": f"ESC-10 clips of {args.csv}",
              "cv": f"{args.folds} folds grouped by src_file, seed {args.seed}",
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
              "train": full, "distill": student | {"config": t["config"], "distill": t["distill"]},
              "student_budgets": budgets, "missed": miss}
    atomic_write(out, json.dumps(report, indent=2) + "\n")
    save_confusion(full, out.with_name("custom-confusion-train"), "train (float head), CV")
    save_confusion(student, out.with_name("custom-confusion-distill"), "distill INT8 (TFLite Micro), CV")

    head = f"{'model':<34} {'CV acc':>7} {'Wilson 95%':>13} {'bootstrap 95%':>14} {'folds':>22}"
    print(head)
    print("-" * len(head))
    for name, s in (("train: YAMNet + head (float)", full), ("distill: student INT8 TFLite Micro", student)):
        folds = " ".join(f"{f['correct']}/{f['clips']}" for f in s["folds"])
        print(f"{name:<34} {s['accuracy']:>7.1%} {s['wilson95'][0]:>6.1%}-{s['wilson95'][1]:<6.1%} "
              f"{s['group_bootstrap95'][0]:>6.1%}-{s['group_bootstrap95'][1]:<7.1%} {folds:>22}")
    print()
    print(format_summary(full, "train"))
    print(format_summary(student, "distill"))
    print(f"student: {m['parameters']:,} parameters, weights {m['model']['bytes']:,} B (<= {WEIGHTS_MAX:,}), "
          f"arena {arena['bytes']:,} B (<= {ARENA_MAX:,}; {arena['which']}; host reference "
          f"{arena['host_reference']:,} B), {m['macs_per_patch']:,} MACs/patch")
    if seconds is not None:
        print(f"distill --cv {args.folds}: {seconds:.0f} s in all; the final model's fit "
              f"{student['final_fit_seconds']:.0f} s")
    print(f"wrote {out}" + ("" if not miss else "\nMISSED: " + "; ".join(miss)))
    return 1 if miss else 0


if __name__ == "__main__":
    sys.exit(main())
