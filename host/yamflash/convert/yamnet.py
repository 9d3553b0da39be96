"""`yamflash convert`: weights -> model.tflite (int8 [1,96,64] -> int8 [1,521]) + model.json."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import manifest
from ..errors import UserError
from ..model.weights import NUM_CLASSES, YamnetWeights, load_weights
from ..progress import captured_chatter, log, track
from .export import model_record, tool_versions  # noqa: F401  (model_record: its home before export.py)


def find_labels(weights_path: Path, labels: str | None) -> Path | None:
    if labels:
        return Path(labels)
    for cand in (weights_path.with_name("yamnet_class_map.csv"), weights_path.parent / "yamnet_class_map.csv"):
        if cand.is_file():
            return cand
    return None


@dataclass
class ConvertOptions:
    """What `yamflash convert` converts and how (its flags, by keyword)."""

    weights: str  # yamnet.h5 (Google's Keras weights) or a YAMNet .tflite export
    out_dir: str = "build/model"
    calib_dir: str | None = None  # real audio to calibrate on (required unless synthetic)
    calib_count: int = 1000  # calibration patches
    eval_dir: str | None = None  # held-out audio (default: 30 % of calib_dir's files)
    eval_count: int | None = None  # evaluate on at most this many patches
    synthetic: bool = False  # calibrate on noise (lower fidelity)
    seed: int = 0  # picks the calibration and evaluation patches: same seed and inputs, same model
    labels: str | None = None  # yamnet_class_map.csv (default: beside the weights)


def convert(opts: ConvertOptions) -> dict[str, Any]:
    """The pipeline's first step: YAMNet's weights -> INT8 model.tflite + model.json in ``opts.out_dir``.

    Labels from the class map, calibration and held-out patches from real audio, the weights' layer mapping
    checked against the .tflite they came from, then ``write_model``. Returns model.json's content.
    """
    from .. import dataset
    from ..model.keras import build

    t0 = time.monotonic()
    out = Path(opts.out_dir)
    synthetic = opts.synthetic
    if opts.calib_dir is None and not synthetic:
        raise UserError("no calibration audio: pass --calib-dir DIR of real recordings "
                        "(or --synthetic-calibration, which caps scores near 0.86).")
    wpath = Path(opts.weights)
    log(f"loading weights from {wpath}")
    weights = load_weights(wpath)
    label_path = find_labels(wpath, opts.labels)
    names = manifest.load_labels(label_path) if label_path else [f"class_{i}" for i in range(NUM_CLASSES)]
    if len(names) != NUM_CLASSES:
        raise UserError(f"{label_path} names {len(names)} classes, the model has {NUM_CLASSES}.")
    if synthetic:
        log("WARNING: synthetic calibration gives the deep layers ranges that fit noise, not sound; "
            "expect lower fidelity and scores capped near 0.86.")
    calib, ev, cal_info = dataset.collect(None if synthetic else opts.calib_dir, opts.eval_dir, opts.calib_count,
                                          opts.eval_count, opts.seed)
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
    """Quantize, export (export.py: the TFLite Micro check and model.json's common fields), measure fidelity on
    ``ev`` with TFLite Micro, then write model.tflite + model.json.

    Shared by `convert` (YAMNet's 521 classes) and `train` (the same body with a new classifier).
    """
    from ..model import fidelity
    from ..model.keras import build, float_scores
    from ..quant import recipes as quantize
    from ..target.layout import choose as choose_layout
    from ..target.layout import confirm as confirm_layout
    from .export import prepare

    float_model = build(weights)
    with captured_chatter():
        tflite, recipe = quantize.convert_int8(weights, calib, log=log)
    t_conv = time.monotonic() - t0
    # Rewrites that change no output bit but make ESP-NN faster on the chip (target/layout.py), checked on
    # real patches before they replace the model.
    tflite, chip_layout = choose_layout(tflite, ev.patches if ev is not None and len(ev.patches) else calib, log)
    exp = prepare(tflite, names, labels_source, log)
    micro = exp.micro
    fid: dict[str, Any] = {"patches": 0, "note": "no evaluation audio"}
    if ev is not None and len(ev.patches):
        log(f"fidelity: float vs int8 (TFLite Micro) on {len(ev.patches)} held-out patches")
        ref = float_scores(float_model, ev.patches)
        test = micro.run(ev.patches, progress=None) if len(ev.patches) < 8 else \
            _run_tracked(micro, ev.patches)
        fid = fidelity.compare(ref, test)
        fid["eval"] = cal_info.get("eval_dir")
    return exp.write(out, {
        "weights": weights.source | {"activation": weights.activation},
        "calibration": cal_info | recipe,
        "fidelity": fid,
        "convert_seconds": round(time.monotonic() - t0, 1),
        "quantize_seconds": round(t_conv, 1),
        "tool_versions": tool_versions(),
        "layout": confirm_layout(chip_layout, exp.record.get("arena"), len(exp.tflite)),
        **(extra or {}),
    })


def _run_tracked(micro: Any, patches: Any) -> Any:
    import numpy as np

    outs = [micro.run(p[None])[0] for p in track(patches, "running int8 model in TFLite Micro")]
    return np.stack(outs)
