"""Subcommands of the ``yamflash`` CLI. Each one is thin: parse, call a module, print."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .cli import cli
from .errors import UserError


@cli.command()
@click.option("--weights", "weights", type=str, default=None,
              help="yamnet.h5 (Google's Keras weights) or a YAMNet .tflite export. Default: download yamnet.h5.")
@click.option("--out", "out_dir", default="build/model", show_default=True, help="Output folder.")
@click.option("--calib-dir", type=str, default=None, help="Folder of real audio for calibration.")
@click.option("--calib-count", type=int, default=1000, show_default=True, help="Calibration patches.")
@click.option("--eval-dir", type=str, default=None, help="Held-out audio (default: 30% of --calib-dir files).")
@click.option("--eval-count", type=int, default=None, help="Evaluate on at most this many patches.")
@click.option("--synthetic-calibration", is_flag=True, help="Calibrate on noise (lower fidelity).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--labels", type=str, default=None, help="yamnet_class_map.csv (default: next to the weights).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def convert(weights: str | None, out_dir: str, calib_dir: str | None, calib_count: int, eval_dir: str | None,
            eval_count: int | None, synthetic_calibration: bool, seed: int, labels: str | None, as_json: bool) -> None:
    """Convert YAMNet to an INT8 TFLite Micro model with a log-mel patch input."""
    from .convert import convert as run
    from .download import default_weights
    from .fidelity import table

    if calib_count <= 0:
        raise UserError("--calib-count must be positive.")
    weights_path = weights or str(default_weights())
    m = run(weights_path, out_dir, calib_dir, calib_count, eval_dir, eval_count, synthetic_calibration, seed, labels)
    if as_json:
        click.echo(json.dumps(m, indent=2))
        return
    click.echo(table(m["fidelity"]))
    click.echo(f"\nwrote {Path(out_dir) / 'model.tflite'} ({m['model']['bytes']:,} bytes, "
               f"arena {m['arena_bytes']:,} bytes, {m['macs_per_patch'] / 1e6:.1f} M MACs/patch) "
               f"in {m['convert_seconds']:.0f} s")


@cli.command("inspect")
@click.argument("model", type=str)
@click.option("--json", "as_json", is_flag=True)
@click.option("--no-arena", is_flag=True, help="Skip measuring the arena in TFLite Micro.")
def inspect_cmd(model: str, as_json: bool, no_arena: bool) -> None:
    """Tensors, ops, parameters, MACs and arena of a .tflite, and whether TFLite Micro can run it."""
    from .inspect_model import inspect

    if not Path(model).is_file():
        raise UserError(f"{model} does not exist; pass a .tflite file.")
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
        click.echo(f"  arena  {r['arena_bytes']:,} bytes (TFLite Micro on this host)")
    click.echo(f"  TFLite Micro: {r['tflm_verdict']}")
    for reason in r["tflm_reasons"]:
        click.echo(f"    - {reason}")
    if "advice" in r:
        click.echo(f"  next: {r['advice']}")
