"""The model commands: convert, inspect, train, distill.

Each command is thin: parse, call a library module (imported lazily, so `yamflash -h` starts fast), print.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import UserError
from ..learn.config import DistillConfig
from ..outputs import check_dir


@click.command()
@click.option("--weights", "weights", type=str, default=None,
              help="yamnet.h5 (Google's Keras weights) or a YAMNet .tflite export. Default: download yamnet.h5.")
@click.option("--out", "out_dir", default="build/model", show_default=True, help="Output folder.")
@click.option("--calib-dir", type=str, default=None, help="Folder of real audio for calibration.")
@click.option("--calib-count", type=int, default=1000, show_default=True, help="Calibration patches.")
@click.option("--eval-dir", type=str, default=None, help="Held-out audio (default: 30% of --calib-dir files).")
@click.option("--eval-count", type=int, default=None, help="Evaluate on at most this many patches.")
@click.option("--synthetic-calibration", is_flag=True, help="Calibrate on noise (lower fidelity).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for picking calibration and evaluation patches (same seed and inputs, same model).")
@click.option("--labels", type=str, default=None, help="yamnet_class_map.csv (default: next to the weights).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.option("--no-cache", is_flag=True, help="Convert even when the same conversion is cached (~/.cache/yamflash).")
def convert(weights: str | None, out_dir: str, calib_dir: str | None, calib_count: int, eval_dir: str | None,
            eval_count: int | None, synthetic_calibration: bool, seed: int, labels: str | None, as_json: bool,
            no_cache: bool) -> None:
    """Convert YAMNet to an INT8 TFLite Micro model with a log-mel patch input."""
    from ..convert import cache as convert_cache
    from ..convert.yamnet import ConvertOptions, find_labels
    from ..convert.yamnet import convert as convert_model
    from ..download import default_weights
    from ..model.fidelity import table
    from ..progress import log

    if calib_count <= 0:
        raise UserError("--calib-count must be positive.")
    if weights:
        check_weights(weights)  # before the calibration audio: the first thing to fix
    check_dir(out_dir, "--out", files=("model.tflite", "model.json"), need_bytes=1 << 20)
    weights_path = weights or str(default_weights())
    label_path = find_labels(Path(weights_path), labels)
    settings = {"calib_count": calib_count, "eval_count": eval_count, "synthetic": synthetic_calibration,
                "seed": seed, "calib_dir": calib_dir is not None, "eval_dir": eval_dir is not None}
    k = convert_cache.key(weights_path, str(label_path) if label_path else None, calib_dir, eval_dir, settings)
    cached = None if no_cache or not Path(weights_path).is_file() else convert_cache.lookup(k)
    if cached is not None:
        m = convert_cache.restore(cached, out_dir)
        log(f"same weights, audio, settings and yamflash code as the conversion cached in {cached}: reused it "
            f"(--no-cache converts again)")
    else:
        m = convert_model(ConvertOptions(weights=weights_path, out_dir=out_dir, calib_dir=calib_dir,
                                         calib_count=calib_count, eval_dir=eval_dir, eval_count=eval_count,
                                         synthetic=synthetic_calibration, seed=seed, labels=labels))
        convert_cache.store(k, out_dir)
    if as_json:
        click.echo(json.dumps(m, indent=2))
        return
    click.echo(table(m["fidelity"]))
    click.echo(f"\nwrote {Path(out_dir) / 'model.tflite'} ({m['model']['bytes']:,} bytes, "
               f"arena {m['arena_bytes']:,} bytes, {m['macs_per_patch'] / 1e6:.1f} M MACs/patch) "
               f"in {m['convert_seconds']:.0f} s")


@click.command("inspect")
@click.argument("model", type=str)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-arena", is_flag=True, help="Skip measuring the arena in TFLite Micro.")
@click.option("--estimate", is_flag=True, help="Also estimate per-layer latency on an ESP32-S3 with ESP-NN.")
def inspect_cmd(model: str, as_json: bool, no_arena: bool, estimate: bool) -> None:
    """Tensors, ops, parameters, MACs and arena of a .tflite, and whether TFLite Micro can run it."""
    from ..chip.inspect import inspect

    if not Path(model).is_file():
        raise UserError(f"{model} does not exist; pass a .tflite file.")
    if estimate:
        from ..chip import estimate as em
        from ..chip import report

        e = em.estimate(model, measure_arena=not no_arena)
        click.echo(json.dumps(e, indent=2) if as_json else report.render(e, per_layer=True))
        return
    r = inspect(model, measure_arena=not no_arena)
    if as_json:
        click.echo(json.dumps(r, indent=2))
        return
    click.echo(f"{r['path']}  ({r['bytes']:,} bytes, {r['parameters']:,} parameters, {r['macs'] / 1e6:.1f} M MACs)")
    for kind in ("inputs", "outputs"):
        for t in r[kind]:
            q = f"  scale {t['scale']:.6g} zero point {t['zero_point']}" if "scale" in t else ""
            click.echo(f"  {kind[:-1]:<6} {t['dtype']:<8} {str(t['shape']):<16}{q}")
    click.echo("  ops    " + ", ".join(f"{k} x{v}" for k, v in sorted(r["op_counts"].items())))
    if "arena_bytes" in r:
        from ..target.arena import recorded_chip_arena

        click.echo(f"  arena  {r['arena_bytes']:,} bytes (TFLite Micro on this host, reference kernels)")
        chip, scratch = recorded_chip_arena(model), r.get("espnn_largest_scratch", 0)
        click.echo(f"  chip   {chip:,} bytes with ESP-NN's scratch (measured, model.json beside it)" if chip else
                   f"  chip   at most {r['arena_bytes'] + scratch:,} bytes with ESP-NN's scratch (host arena + largest "
                   f"request {scratch:,}; not measured)")
    click.echo(f"  TFLite Micro: {r['tflm_verdict']}")
    for reason in r["tflm_reasons"]:
        click.echo(f"    - {reason}")
    if "advice" in r:
        click.echo(f"  next: {r['advice']}")


def check_weights(weights: str) -> None:
    if not Path(weights).is_file():
        what = "is a folder" if Path(weights).is_dir() else "does not exist"
        raise UserError(f"--weights {weights} {what}; pass yamnet.h5 or a YAMNet .tflite.")


def parse_where(where: tuple[str, ...]) -> dict[str, str]:
    """`--where COLUMN=VALUE` options as a dict (train and distill filter CSV rows with them)."""
    conds = {}
    for w in where:
        if "=" not in w:
            raise UserError(f"--where {w!r} must look like COLUMN=VALUE.")
        key, value = w.split("=", 1)
        conds[key] = value
    return conds


@click.command()
@click.option("--weights", required=True, help="yamnet.h5 or a YAMNet .tflite export.")
@click.option("--data", type=str, default=None, help="Folder with one subfolder of audio per class.")
@click.option("--csv", "csv_path", type=str, default=None, help="ESC-50-style CSV (filename, category[, fold]).")
@click.option("--audio-dir", type=str, default=None, help="Where the CSV's files are (default: ../audio beside it).")
@click.option("--where", multiple=True, help="Keep CSV rows with COLUMN=VALUE (e.g. esc10=True).")
@click.option("--keep", multiple=True, help="AudioSet class to keep beside the new ones (repeatable).")
@click.option("--labels", type=str, default=None, help="yamnet_class_map.csv, needed with --keep.")
@click.option("--out", "out_dir", default="build/custom", show_default=True,
              help="Output folder for model.tflite, model.json and training.json.")
@click.option("--test-fraction", type=float, default=0.4, show_default=True,
              help="Share of each class's clips held out for testing when the data has no folds.")
@click.option("--test-fold", type=str, default=None, help="Fold to test on (default: the last, when folds exist).")
@click.option("--calib-count", type=int, default=1000, show_default=True,
              help="Patches that calibrate the INT8 quantization.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the split and the training.")
@click.option("--json", "as_json", is_flag=True, help="Print the training report as JSON.")
def train(weights: str, data: str | None, csv_path: str | None, audio_dir: str | None, where: tuple[str, ...],
          keep: tuple[str, ...], labels: str | None, out_dir: str, test_fraction: float, test_fold: str | None,
          calib_count: int, seed: int, as_json: bool) -> None:
    """Train a classifier for your own sounds on YAMNet embeddings and export it as an INT8 model."""
    from ..learn.train import confusion_table
    from ..learn.train import train as train_model
    from ..manifest import load_labels

    conds = parse_where(where)
    check_weights(weights)
    check_dir(out_dir, "--out", files=("model.tflite", "model.json", "training.json"), need_bytes=1 << 20)
    m = train_model(weights_path=weights, data=data, csv_path=csv_path, audio_dir=audio_dir, where=conds,
                    out_dir=out_dir, keep=list(keep), test_fraction=test_fraction, test_fold=test_fold, seed=seed,
                    calib_count=calib_count, audioset_labels=load_labels(labels) if labels else None)
    t = m["training"]
    if as_json:
        click.echo(json.dumps(t, indent=2))
        return
    names = t["classes"]
    click.echo(f"{len(names)} classes, {t['train_clips']} training clips, {t['test_clips']} test clips ({t['split']})")
    click.echo(f"clip accuracy: float head {t['float']['accuracy']:.1%}, "
               f"INT8 in TFLite Micro {t['int8_tflm']['accuracy']:.1%}")
    click.echo(confusion_table(t["int8_tflm"], names))
    click.echo(f"\nwrote {Path(out_dir) / 'model.tflite'} and model.json ({m['arena_bytes']:,} bytes arena)")


_DISTILL = DistillConfig()  # the CLI's defaults are the measured configuration (scripts/bench_custom.py)


@click.command("distill")
@click.option("--weights", required=True, help="The teacher: yamnet.h5 or a YAMNet .tflite export.")
@click.option("--data", type=str, default=None, help="Folder with one subfolder of audio per class.")
@click.option("--csv", "csv_path", type=str, default=None, help="ESC-50-style CSV (filename, category[, fold]).")
@click.option("--audio-dir", type=str, default=None, help="Where the CSV's files are (default: ../audio beside it).")
@click.option("--where", multiple=True, help="Keep CSV rows with COLUMN=VALUE (e.g. esc10=True).")
@click.option("--unlabelled", multiple=True,
              help="Folder of unlabelled audio to distill on (repeatable; default: the labelled set's folders). "
                   "Test clips are always held out.")
@click.option("--out", "out_dir", default="build/distill", show_default=True,
              help="Output folder for model.tflite, model.json and training.json.")
@click.option("--test-fraction", type=float, default=0.4, show_default=True,
              help="Share of each class's clips held out for testing when the data has no folds.")
@click.option("--test-fold", type=str, default=None, help="Fold to test on (default: the last, when folds exist).")
@click.option("--epochs", type=int, default=_DISTILL.epochs, show_default=True,
              help="Passes over the unlabelled views (0: the student cut out of YAMNet as is).")
@click.option("--views", type=int, default=_DISTILL.views, show_default=True,
              help="Views of each unlabelled clip (1: none).")
@click.option("--finetune-epochs", type=int, default=_DISTILL.finetune_epochs, show_default=True,
              help="Then train student and head together on the labelled clips (0: head only).")
@click.option("--calib-count", type=int, default=_DISTILL.calib_count, show_default=True,
              help="Patches that calibrate the INT8 quantization.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the split and the training.")
@click.option("--cv", "cv_folds", type=int, default=None,
              help="Measure accuracy by K-fold cross-validation over source recordings (every clip tested once, "
                   "by a student that never heard its recording), then train the written model on all clips.")
@click.option("--json", "as_json", is_flag=True, help="Print the training report as JSON.")
def distill_cmd(weights: str, data: str | None, csv_path: str | None, audio_dir: str | None, where: tuple[str, ...],
                unlabelled: tuple[str, ...], out_dir: str, test_fraction: float, test_fold: str | None, epochs: int,
                views: int, finetune_epochs: int, calib_count: int, seed: int, cv_folds: int | None,
                as_json: bool) -> None:
    """Distill YAMNet into a compact student (~180 K parameters), add a head for your classes, export INT8."""
    from ..learn.distill import distill
    from ..learn.train import confusion_table

    conds = parse_where(where)
    check_weights(weights)
    check_dir(out_dir, "--out", files=("model.tflite", "model.json", "training.json"), need_bytes=256 << 10)
    cfg = DistillConfig(epochs=epochs, views=views, calib_count=calib_count, seed=seed,
                        finetune_epochs=finetune_epochs)
    if cv_folds is not None and cv_folds < 2:
        raise UserError(f"--cv {cv_folds}: cross-validation needs at least 2 folds.")
    m = distill(weights_path=weights, data=data, csv_path=csv_path, audio_dir=audio_dir, where=conds,
                unlabelled=list(unlabelled), out_dir=out_dir, test_fraction=test_fraction, test_fold=test_fold,
                cfg=cfg, cv_folds=cv_folds)
    t = m["training"]
    if as_json:
        click.echo(json.dumps(t, indent=2))
        return
    names = t["classes"]
    if "cv" in t:
        from ..learn.cv import format_summary

        click.echo(format_summary(t["cv"], "student INT8 in TFLite Micro"))
        click.echo(confusion_table(t["int8_tflm"], names))
        click.echo(f"\nthe written model is trained on all {t['train_clips']} clips; {m['parameters']:,} parameters, "
                   f"{m['model']['bytes']:,} bytes model, {m['arena_bytes']:,} bytes arena; wrote "
                   f"{Path(out_dir) / 'model.tflite'} and model.json")
        return
    click.echo(f"{len(names)} classes, {t['train_clips']} training clips, {t['test_clips']} test clips ({t['split']}); "
               f"distilled on {t['distill']['patches']} patches of {t['distill']['unlabelled_files']} files")
    click.echo(f"clip accuracy: student float {t['float']['accuracy']:.1%}, INT8 in TFLite Micro "
               f"{t['int8_tflm']['accuracy']:.1%}")
    click.echo(confusion_table(t["int8_tflm"], names))
    click.echo(f"\n{m['parameters']:,} parameters, {m['model']['bytes']:,} bytes model, {m['arena_bytes']:,} bytes "
               f"arena, {m['macs_per_patch']:,} MACs per patch; wrote {Path(out_dir) / 'model.tflite'} and model.json")
