"""`yamflash convert`: weights -> model.tflite (int8 [1,96,64] -> int8 [1,521]) + model.json."""

from __future__ import annotations

import hashlib
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import __version__, manifest
from ..errors import UserError
from ..frontend import PARAMS
from ..model.weights import NUM_CLASSES, YamnetWeights, load_weights
from ..progress import captured_chatter, log, track


def find_labels(weights_path: Path, labels: str | None) -> Path | None:
    if labels:
        return Path(labels)
    for cand in (weights_path.with_name("yamnet_class_map.csv"), weights_path.parent / "yamnet_class_map.csv"):
        if cand.is_file():
            return cand
    return None


def convert(weights_path: str, out_dir: str, calib_dir: str | None, calib_count: int, eval_dir: str | None,
            eval_count: int | None, synthetic: bool, seed: int, labels: str | None) -> dict[str, Any]:
    from .. import dataset
    from ..model.keras import build

    t0 = time.monotonic()
    out = Path(out_dir)
    if calib_dir is None and not synthetic:
        raise UserError("no calibration audio: pass --calib-dir DIR of real recordings "
                        "(or --synthetic-calibration, which caps scores near 0.86; see INT8-FINDINGS).")
    wpath = Path(weights_path)
    log(f"loading weights from {wpath}")
    weights = load_weights(wpath)
    label_path = find_labels(wpath, labels)
    names = manifest.load_labels(label_path) if label_path else [f"class_{i}" for i in range(NUM_CLASSES)]
    if len(names) != NUM_CLASSES:
        raise UserError(f"{label_path} names {len(names)} classes, the model has {NUM_CLASSES}.")
    if synthetic:
        log("WARNING: synthetic calibration gives the deep layers ranges that fit noise, not sound; "
            "expect lower fidelity and scores capped near 0.86.")
    calib, ev, cal_info = dataset.collect(None if synthetic else calib_dir, eval_dir, calib_count, eval_count, seed)
    if weights.source.get("format") == "tflite":
        from ..audio import load_audio
        from ..model.mapping_check import check

        files = ev.files if ev is not None else []
        weights.source["mapping_check"] = check(wpath, build(weights), [load_audio(f) for f in files[:16]]) \
            if files else {"checked": False, "reason": "no real audio to check with"}
        log(f"weights mapping check vs {wpath.name}: {weights.source['mapping_check']}")
    return write_model(weights, names, str(label_path) if label_path else None, calib, ev, cal_info, out, t0)


def write_model(weights: YamnetWeights, names: list[str], labels_source: str | None, calib: Any, ev: Any,
                cal_info: dict[str, Any], out: Path, t0: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Quantize, check in TFLite Micro, measure fidelity on ``ev``, then write model.tflite + model.json.

    Shared by `convert` (YAMNet's 521 classes) and `train` (the same body with a new classifier).
    """
    from ..chip.inspect import inspect
    from ..target.layout import choose as choose_layout
    from ..target.layout import confirm as confirm_layout
    from ..model import fidelity
    from ..model.keras import build, float_scores
    from ..model.tflm import MicroModel
    from ..quant import recipes as quantize

    float_model = build(weights)
    with captured_chatter():
        tflite, recipe = quantize.convert_int8(weights, calib, log=log)
    t_conv = time.monotonic() - t0
    # Rewrites that change no output bit but make ESP-NN faster on the chip (target/layout.py), checked on
    # real patches before they replace the model.
    tflite, chip_layout = choose_layout(tflite, ev.patches if ev is not None and len(ev.patches) else calib, log)

    with tempfile.TemporaryDirectory() as td:  # inspect reads a file; nothing lands in `out` until the end
        (Path(td) / "model.tflite").write_bytes(tflite)
        report = inspect(Path(td) / "model.tflite")
    if report["tflm_missing_ops"]:
        raise UserError(f"internal: converted model uses ops TFLite Micro lacks: {report['tflm_missing_ops']}")
    micro = MicroModel(tflite)
    fid: dict[str, Any] = {"patches": 0, "note": "no evaluation audio"}
    if ev is not None and len(ev.patches):
        log(f"fidelity: float vs int8 (TFLite Micro) on {len(ev.patches)} held-out patches")
        ref = float_scores(float_model, ev.patches)
        test = micro.run(ev.patches, progress=None) if len(ev.patches) < 8 else \
            _run_tracked(micro, ev.patches)
        fid = fidelity.compare(ref, test)
        fid["eval"] = cal_info.get("eval_dir")
    m = model_record(tflite, report, micro, names, labels_source) | {
        "weights": weights.source | {"activation": weights.activation},
        "calibration": cal_info | recipe,
        "fidelity": fid,
        "convert_seconds": round(time.monotonic() - t0, 1),
        "quantize_seconds": round(t_conv, 1),
        "tool_versions": tool_versions(),
    }
    m["layout"] = confirm_layout(chip_layout, m.get("arena"), len(tflite))
    m.update(extra or {})
    # Both or neither: a model.json never describes a model.tflite that is not there.
    manifest.write_all({out / "model.tflite": tflite, out / "model.json": manifest.dumps(m)}, flag="--out")
    return m


def model_record(tflite: bytes, report: dict[str, Any], micro: Any, names: list[str],
                 labels_source: str | None) -> dict[str, Any]:
    """The manifest fields every exported model has (convert, train, distill): file, I/O, frontend, ops, arena."""
    import tflite_micro

    si, zi = micro.input_quant
    so, zo = micro.output_quant
    rec = {
        "schema": manifest.SCHEMA,
        "generator": f"yamflash {__version__}",
        "model": {"file": "model.tflite", "bytes": len(tflite), "sha256": hashlib.sha256(tflite).hexdigest()},
        "input": {"shape": [1, 96, 64], "dtype": "int8", "scale": si, "zero_point": zi, "kind": "log-mel patch"},
        "output": {"shape": [1, len(names)], "dtype": "int8", "scale": so, "zero_point": zo,
                   "activation": "sigmoid"},
        "frontend": PARAMS.to_dict(),
        "labels": names,
        "labels_source": labels_source,
        "ops": sorted(report["op_counts"]),
        "op_counts": report["op_counts"],
        "parameters": report["parameters"],
        "macs_per_patch": report["macs"],
        "arena_bytes": report["arena_bytes"],
        "arena_measured_on": f"host {platform.machine()}, tflite-micro {tflite_micro.__version__}",
    }
    # The chip's arena beside the host's: ESP-NN's scratch buffers, measured where ../shared/sdk is (arena.py).
    from ..target.arena import manifest_arena
    from ..target.chip_arena import measure

    rec["arena"] = manifest_arena(report["arena_bytes"], tflite, measure(rec, tflite, log))
    return rec


def tool_versions() -> dict[str, str]:
    import tensorflow as tf
    import tflite_micro

    return {"tensorflow": tf.__version__, "tflite_micro": tflite_micro.__version__,
            "python": platform.python_version()}


def _run_tracked(micro: Any, patches: Any) -> Any:
    import numpy as np

    outs = [micro.run(p[None])[0] for p in track(patches, "running int8 model in TFLite Micro")]
    return np.stack(outs)
