"""Issue 14: the virtual board running a rewritten model gives the unrewritten model's int8 outputs, bit for bit.

    python scripts/validate_rewrites.py [--audio DIR_OR_FILE ...] [--out build/bench/rewrite_validate.json]

1. the unrewritten model: YAMNet's real weights (../shared/data) in TensorFlow's plain full-INT8 conversion
   (cached in ~/.cache/yamflash/rewrite-plain-*, as tests/test_rewrite.py makes it), or --unrewritten FILE;
2. convert's chip layout (target/layout.py) rewrites it and records it in a model.json (model_record);
3. `yamflash gen --board sim` + `build` + `flash` of the rewritten model into a virtual board;
4. `yamflash validate --port sim --model-dir REWRITTEN --reference-model UNREWRITTEN --no-float`: the board's
   int8 scores, on its own frontend's patches (pcm) and on the host's (patch), against the unrewritten model run
   by TFLite Micro on the host. Exit 1 unless every int8 output of every patch is identical.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))
DATA = ROOT.parent / "shared" / "data"


def plain_model(weights: Path, calib_dir: Path) -> Path:
    """The plain conversion, cached by what decides it (tests/test_rewrite.py uses it too). Keyed by what the
    plain conversion runs, not by the whole quant/ folder, which other recipes change."""
    import hashlib
    import inspect

    import tensorflow as tf
    from yamflash.audio import list_audio, load_audio
    from yamflash.cachedir import cache_root
    from yamflash.frontend import waveform_to_patches
    from yamflash.quant import recipes

    pkg = ROOT / "host" / "yamflash"
    h = hashlib.sha256(weights.read_bytes())
    for p in (pkg / "model" / "keras.py", pkg / "model" / "weights.py"):
        h.update(p.name.encode() + p.read_bytes())
    for fn in (recipes.ptq_int8, recipes._converter_bytes, recipes._plain):
        h.update(inspect.getsource(fn).encode())
    h.update(tf.__version__.encode())
    out = cache_root() / f"rewrite-plain-{h.hexdigest()[:16]}" / "model.tflite"
    if not out.is_file():
        import numpy as np
        from yamflash.model.weights import load_weights

        calib = np.concatenate([waveform_to_patches(load_audio(f))[:4] for f in list_audio(calib_dir)[:8]])
        tfl, _ = recipes.convert_int8(load_weights(weights), calib.astype(np.float32), log=print,
                                      recipe="ptq-minmax")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".tmp").write_bytes(tfl)
        out.with_suffix(".tmp").replace(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--unrewritten", type=Path, default=None, help="An int8 YAMNet .tflite without rewrites.")
    ap.add_argument("--audio", action="append", default=None, help="Audio file or folder (repeatable).")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "rewrite_validate.json")
    args = ap.parse_args()

    import numpy as np
    from yamflash.audio import list_audio, load_audio
    from yamflash.board import flash as fl
    from yamflash.board import validate as v
    from yamflash.chip.inspect import inspect as inspect_model
    from yamflash.convert.yamnet import model_record
    from yamflash.frontend import waveform_to_patches
    from yamflash.manifest import load_labels
    from yamflash.model.tflm import MicroModel
    from yamflash.target import build, gen, layout

    esc = DATA / "audio" / "esc50-16k-dev" / "audio"
    plain = args.unrewritten or plain_model(DATA / "models" / "yamnet_keras_drq_logmel_out.tflite", esc)
    audio = args.audio or [str(DATA / "audio" / "demo")]
    original = plain.read_bytes()
    check = np.concatenate([waveform_to_patches(load_audio(f))[:2] for f in list_audio(esc)[8:12]])
    with tempfile.TemporaryDirectory() as td:
        work = Path(td)
        mdir = work / "model"
        mdir.mkdir()
        tfl, lay = layout.choose(original, check, log=print)
        (mdir / "model.tflite").write_bytes(tfl)
        labels = load_labels(DATA / "models" / "yamnet_class_map.csv")
        rec = model_record(tfl, inspect_model(mdir / "model.tflite"), MicroModel(tfl), labels, None)
        rec["layout"] = layout.confirm(lay, rec.get("arena"), len(tfl))
        (mdir / "model.json").write_text(json.dumps(rec))
        fw = work / "firmware"
        shutil.copytree(ROOT / "firmware", fw, ignore=shutil.ignore_patterns("generated", "spiffs", ".pio", "build"))
        gen.generate(mdir / "model.json", gen.GenConfig(profile="sim"), fw)
        build.build(fw, work / "out", profile="sim")
        flash_file = work / "flash.bin"
        fl.flash_sim(fl.load_plan(work / "out" / "sim" / "flash.json"), flash_file)
        try:  # board/connect.py where the board seam lives, board/validate.py before it
            from yamflash.board.connect import open_board
        except ImportError:
            open_board = v.open_board
        with open_board("sim", flash_file) as board:
            report = v.validate(board, mdir, v.audio_files(audio), with_float=False, say=print,
                                reference_model=plain)
    o = report["overall"]
    result = {"unrewritten": str(plain), "rewrite": lay["rewrite"], "rewrites": [r["rewrite"] for r in lay["rewrites"]],
              "model_bytes": [len(original), len(tfl)], "patches": o["patches"], "clips": o["clips"],
              "pcm_bit_exact": o["pcm"]["bit_exact"], "patch_bit_exact": o["patch"]["bit_exact"],
              "pcm_max_lsb": o["pcm"]["max_lsb"], "patch_max_lsb": o["patch"]["max_lsb"],
              "command": "yamflash validate --port sim --model-dir REWRITTEN --reference-model UNREWRITTEN --no-float"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = o["patches"] > 0 and o["pcm"]["bit_exact"] == 1.0 and o["patch"]["bit_exact"] == 1.0
    print("bit-identical" if ok else "DIFFERENT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
