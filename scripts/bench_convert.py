"""Compare INT8 conversion recipes on the shared data: fidelity in TFLite Micro, chip cost, label hit rate.

Uses the same calibration draw and held-out split as ``yamflash convert`` (``dataset.collect``, seed 0,
30 % of the files held out), runs each recipe, evaluates the INT8 model in TFLite Micro against the float
Keras model on the held-out patches and writes build/bench/convert.json.

    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python scripts/bench_convert.py [--recipes eq-clip,eq-round,eq-joint,eq-sens,
        ptq-minmax] [--hub-recipes eq-clip,ptq-minmax] [--aeq min_max_uniform_quantize,OCTAV] [--aeq-python PY]

Two sets of genuine weights are measured, each against its own float model: Google's yamnet.h5 weights
(here from the DRQ export; plain ReLU) and Google's retrained TF Hub lite model (ReLU6, under
"tf_hub_relu6"). Per row: agreement with the float model, the chip estimate of ``yamflash inspect --estimate``
(Invoke ms and arena with ESP-NN's scratch; an estimate, not a chip measurement), the host TFLM arena, and
what a user sees: the AudioSet label hit rate on the held-out ESC-50 clips whose category maps to AudioSet
labels (``ESC50_TO_AUDIOSET``; clip-mean scores, top-1 and top-5), also for the float model.

Baseline rows: Google's ai-edge-quantizer (``scripts/aeq_baseline.py``, run in its own venv, default
~/.cache/yamflash/aeq-venv; skipped with a note when that is absent), with real and with synthetic N(-5, 3)
calibration. Rows of recipes not named are kept from an existing output file (baselines need not be re-run).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("YAMFLASH_DATA", ROOT.parent / "shared" / "data"))
AEQ_PYTHON = Path(os.environ.get("YAMFLASH_AEQ_PYTHON", Path.home() / ".cache" / "yamflash" / "aeq-venv" / "bin"
                                 / "python"))

# ESC-50 category -> the AudioSet labels (yamnet_class_map.csv display names) that count as detecting it.
# drinking_sipping, can_opening and washing_machine have no AudioSet label and are left out.
ESC50_TO_AUDIOSET: dict[str, tuple[str, ...]] = {
    "dog": ("Dog", "Bark", "Bow-wow", "Yip", "Howl", "Growling", "Whimper (dog)", "Canidae, dogs, wolves"),
    "rooster": ("Chicken, rooster", "Crowing, cock-a-doodle-doo"),
    "pig": ("Pig", "Oink"),
    "cow": ("Cattle, bovinae", "Moo"),
    "frog": ("Frog", "Croak"),
    "cat": ("Cat", "Meow", "Purr", "Caterwaul"),
    "hen": ("Chicken, rooster", "Cluck", "Fowl"),
    "insects": ("Insect", "Fly, housefly", "Bee, wasp, etc.", "Mosquito", "Buzz"),
    "sheep": ("Sheep", "Bleat"),
    "crow": ("Crow", "Caw"),
    "rain": ("Rain", "Raindrop", "Rain on surface"),
    "sea_waves": ("Ocean", "Waves, surf"),
    "crackling_fire": ("Fire", "Crackle"),
    "crickets": ("Cricket", "Insect"),
    "chirping_birds": ("Bird", "Bird vocalization, bird call, bird song", "Chirp, tweet"),
    "water_drops": ("Drip", "Raindrop"),
    "wind": ("Wind", "Wind noise (microphone)", "Rustling leaves"),
    "pouring_water": ("Pour", "Trickle, dribble", "Fill (with liquid)"),
    "toilet_flush": ("Toilet flush",),
    "thunderstorm": ("Thunderstorm", "Thunder"),
    "crying_baby": ("Baby cry, infant cry", "Crying, sobbing"),
    "sneezing": ("Sneeze",),
    "clapping": ("Clapping", "Applause"),
    "breathing": ("Breathing", "Pant", "Gasp", "Wheeze"),
    "coughing": ("Cough",),
    "footsteps": ("Walk, footsteps",),
    "laughing": ("Laughter", "Giggle", "Snicker", "Belly laugh", "Chuckle, chortle", "Baby laughter"),
    "brushing_teeth": ("Toothbrush", "Electric toothbrush"),
    "snoring": ("Snoring",),
    "door_wood_knock": ("Knock",),
    "mouse_click": ("Clicking",),
    "keyboard_typing": ("Typing", "Computer keyboard", "Typewriter"),
    "door_wood_creaks": ("Creak", "Door", "Squeak"),
    "vacuum_cleaner": ("Vacuum cleaner",),
    "clock_alarm": ("Alarm clock", "Alarm"),
    "clock_tick": ("Tick", "Tick-tock", "Clock"),
    "glass_breaking": ("Shatter", "Glass", "Breaking"),
    "helicopter": ("Helicopter",),
    "chainsaw": ("Chainsaw",),
    "siren": ("Siren", "Civil defense siren", "Police car (siren)", "Ambulance (siren)",
              "Fire engine, fire truck (siren)", "Emergency vehicle"),
    "car_horn": ("Vehicle horn, car horn, honking", "Toot", "Air horn, truck horn"),
    "engine": ("Engine", "Idling", "Medium engine (mid frequency)", "Heavy engine (low frequency)",
               "Light engine (high frequency)", "Accelerating, revving, vroom", "Engine starting"),
    "train": ("Train", "Rail transport", "Railroad car, train wagon", "Train wheels squealing", "Train horn",
              "Train whistle"),
    "church_bells": ("Church bell", "Bell", "Change ringing (campanology)"),
    "airplane": ("Aircraft", "Fixed-wing aircraft, airplane", "Aircraft engine", "Jet engine", "Propeller, airscrew"),
    "fireworks": ("Fireworks", "Firecracker"),
    "hand_saw": ("Sawing",),
}


def clip_targets(ev: Any, calib_dir: str, class_map: Path) -> dict[int, set[int]]:
    """Held-out clip index -> accepted AudioSet class indices, for clips whose ESC-50 category is mapped."""
    with class_map.open(newline="") as f:
        index = {row["display_name"]: int(row["index"]) for row in csv.DictReader(f)}
    missing = sorted({n for names in ESC50_TO_AUDIOSET.values() for n in names} - set(index))
    if missing:
        raise SystemExit(f"bench_convert: labels not in {class_map}: {missing}")
    meta = Path(calib_dir).parent / "meta" / "esc50.csv"
    if not meta.is_file():
        return {}
    with meta.open(newline="") as f:
        category = {row["filename"]: row["category"] for row in csv.DictReader(f)}
    out = {}
    for k, path in enumerate(ev.files):
        cat = category.get(Path(path).name)
        if cat in ESC50_TO_AUDIOSET:
            out[k] = {index[n] for n in ESC50_TO_AUDIOSET[cat]}
    return out


def evaluate(tfl: bytes, path: Path, ref: np.ndarray, ev: Any, targets: dict[int, set[int]]) -> dict[str, Any]:
    """One INT8 model's row: fidelity in TFLite Micro, label hits, host arena, the chip estimate."""
    from yamflash.chip.estimate import estimate
    from yamflash.model import fidelity
    from yamflash.model.tflm import MicroModel, arena_bytes

    path.write_bytes(tfl)
    t1 = time.monotonic()
    test = MicroModel(tfl).run(ev.patches)
    ms = 1000 * (time.monotonic() - t1) / max(1, len(ev.patches))
    est = estimate(path, measure_arena=False)
    return {
        "fidelity": fidelity.compare(ref, test),  # includes top1_tie_aware
        "label_hits": fidelity.label_hits(test, ev.clip, targets),
        "arena_bytes": arena_bytes(tfl),
        "model_bytes": len(tfl),
        "chip_estimate": {"invoke_ms": est["invoke_ms"], "invoke_ms_range": est["invoke_ms_range"],
                          "arena_bytes": est["chip_arena_estimate"]["total"], "layout": est["layout"],
                          "clock": "estimate"},
        "tflm_ms_per_patch": round(ms, 1),
    }


def show(name: str, r: dict[str, Any]) -> None:
    f, h, c = r["fidelity"], r["label_hits"], r["chip_estimate"]
    print(f"{name:34s} top1 {f['top1_agreement']:.4f} (tie-aware {f['top1_tie_aware']:.4f})  "
          f"top5 {f['top5_overlap']:.4f}  cosine {f['cosine_mean']:.4f}  hits {h['top1']:.3f}/{h['top5']:.3f}  "
          f"arena {r['arena_bytes']:,}  chip est. {c['invoke_ms']} ms, arena {c['arena_bytes']:,}"
          + (f"  convert {r['convert_seconds']:.0f} s" if "convert_seconds" in r else ""), flush=True)


def bench_weights(weights_path: str, recipes: list[str], calib: np.ndarray, ev: Any, out_dir: Path,
                  prefix: str, rows: dict[str, Any], targets: dict[int, set[int]], aeq: list[str],
                  aeq_python: Path) -> dict[str, Any]:
    """Convert with each recipe, measure in TFLite Micro against this weights' own float model, and add
    the ceiling (float network, only the int8 input and output). ``rows`` holds earlier rows to keep."""
    from yamflash.model import fidelity
    from yamflash.model.keras import build, float_scores
    from yamflash.model.weights import load_weights
    from yamflash.quant import recipes as quantize
    from yamflash.quant.simulate import N_TENSORS, QuantSpec, Simulator

    weights = load_weights(weights_path)
    ref = float_scores(build(weights), ev.patches)
    for name in recipes:
        t0 = time.monotonic()
        tfl, recipe = quantize.convert_int8(weights, calib, log=lambda m: print(f"  {m}", file=sys.stderr),
                                            recipe=name)
        secs = time.monotonic() - t0
        rows[name] = evaluate(tfl, out_dir / f"{prefix}{name}.tflite", ref, ev, targets) | {
            "convert_seconds": round(secs, 1), "recipe": recipe}
        show(prefix + name, rows[name])
    if aeq:
        rows.update(aeq_rows(weights, calib, ev, ref, out_dir, prefix, targets, aeq, aeq_python))
    # What no int8-output model can beat: float network, only the input and output rounded.
    ranges = np.zeros((N_TENSORS, 2), np.float32)
    ranges[0] = [min(0.0, float(calib.min())), float(calib.max())]
    ceil = Simulator(weights).scores(ev.patches, QuantSpec(ranges, weights=False, output=True))
    c = fidelity.compare(ref, ceil)
    print(f"{prefix}{'ceiling':12s} top1 {c['top1_agreement']:.4f} (tie-aware {c['top1_tie_aware']:.4f})  "
          f"cosine {c['cosine_mean']:.4f}  (float network, int8 input and output only)")
    hits = fidelity.label_hits(ref, ev.clip, targets)
    print(f"{prefix}float label hits on {hits['clips']} held-out ESC-50 clips: top-1 {hits['top1']:.3f}, "
          f"top-5 {hits['top5']:.3f}")
    return {"weights": weights_path, "activation": weights.activation, "recipes": rows,
            "ceiling_int8_input_output": c, "float_label_hits": hits}


def aeq_rows(weights: Any, calib: np.ndarray, ev: Any, ref: np.ndarray, out_dir: Path, prefix: str,
             targets: dict[int, set[int]], algorithms: list[str], aeq_python: Path) -> dict[str, Any]:
    """ai-edge-quantizer's static int8 recipe on the same float network, with the same real calibration patches
    and with the published recipe's synthetic N(-5, 3) patches, each algorithm a row."""
    import tensorflow as tf
    from yamflash.dataset import synthetic_patches
    from yamflash.model.keras import build
    from yamflash.quant.flatbuffer import inline_buffers

    if not aeq_python.is_file():
        print(f"{prefix}ai-edge-quantizer rows skipped: no {aeq_python} (see scripts/aeq_baseline.py)")
        return {}
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as td:
        float_path = Path(td) / "float.tflite"
        float_path.write_bytes(bytes(tf.lite.TFLiteConverter.from_keras_model(build(weights)).convert()))
        for cal_name, cal in (("", calib), ("-synthetic", synthetic_patches(200, 0))):
            np.save(Path(td) / f"calib{cal_name}.npy", cal.astype(np.float32))
            out = Path(td) / f"out{cal_name}"
            out.mkdir()
            p = subprocess.run([str(aeq_python), str(ROOT / "scripts" / "aeq_baseline.py"), str(float_path),
                                str(Path(td) / f"calib{cal_name}.npy"), str(out), ",".join(algorithms)],
                               capture_output=True, text=True, timeout=3600)
            if p.returncode != 0:
                raise SystemExit(f"bench_convert: aeq_baseline.py failed:\n{p.stderr[-3000:]}")
            for algo in algorithms:
                name = f"aeq-{algo}{cal_name}"
                tfl = inline_buffers((out / f"aeq-{algo}.tflite").read_bytes())
                rows[name] = evaluate(tfl, out_dir / f"{prefix}{name}.tflite", ref, ev, targets) | {
                    "recipe": {"tool": "ai-edge-quantizer", "recipe": "static_wi8_ai8", "algorithm": algo,
                               "calibration": "synthetic N(-5, 3), 200 patches" if cal_name else
                               f"{len(calib)} real patches (the recipes' draw)"}}
                show(prefix + name, rows[name])
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=str(DATA / "models" / "yamnet_keras_drq_logmel_out.tflite"))
    ap.add_argument("--hub-weights", default=str(DATA / "models" / "lite-model_yamnet_classification_tflite_1.tflite"),
                    help="Google's retrained ReLU6 YAMNet (TF Hub lite model), measured as a second set of weights")
    ap.add_argument("--calib-dir", default=str(DATA / "audio" / "esc50-16k-dev" / "audio"))
    ap.add_argument("--calib-count", type=int, default=1000)
    ap.add_argument("--eval-count", type=int, default=None, help="evaluate on at most this many patches")
    ap.add_argument("--recipes", default="eq-clip,eq-round,eq-joint,eq-sens,ptq-minmax",
                    help="recipes for --weights ('' for none)")
    ap.add_argument("--hub-recipes", default="eq-clip,ptq-minmax", help="recipes for --hub-weights ('' for none)")
    ap.add_argument("--aeq", default="min_max_uniform_quantize,OCTAV",
                    help="ai-edge-quantizer algorithms for the baseline rows of both weight sets ('' for none)")
    ap.add_argument("--aeq-python", default=str(AEQ_PYTHON), help="python of the venv holding ai-edge-quantizer")
    ap.add_argument("--class-map", default=str(DATA / "models" / "yamnet_class_map.csv"))
    ap.add_argument("--out", default=str(ROOT / "build" / "bench" / "convert.json"))
    args = ap.parse_args(argv)

    from yamflash import dataset

    calib, ev, info = dataset.collect(args.calib_dir, None, args.calib_count, args.eval_count, seed=0)
    assert ev is not None
    out_dir = Path(args.out).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    old: dict[str, Any] = {}
    if Path(args.out).is_file():  # keep earlier rows (baselines) measured on the same data
        old = json.loads(Path(args.out).read_text())
        old = old if old.get("data") == info else {}
    results: dict[str, Any] = {"data": info, "machine_cpus": os.cpu_count()}
    targets = clip_targets(ev, args.calib_dir, Path(args.class_map))
    results["label_hit_clips"] = len(targets)
    aeq = [a for a in args.aeq.split(",") if a]
    main_rows = bench_weights(args.weights, [r for r in args.recipes.split(",") if r], calib, ev, out_dir, "",
                              dict(old.get("recipes", {})), targets, aeq, Path(args.aeq_python))
    results["weights"] = main_rows["weights"]
    results["recipes"] = main_rows["recipes"]
    results["ceiling_int8_input_output"] = main_rows["ceiling_int8_input_output"]
    results["float_label_hits"] = main_rows["float_label_hits"]
    hub_recipes = [r for r in args.hub_recipes.split(",") if r]
    if hub_recipes and Path(args.hub_weights).is_file():
        results["tf_hub_relu6"] = bench_weights(args.hub_weights, hub_recipes, calib, ev, out_dir, "hub-",
                                                dict(old.get("tf_hub_relu6", {}).get("recipes", {})), targets,
                                                aeq, Path(args.aeq_python))
    elif "tf_hub_relu6" in old:
        results["tf_hub_relu6"] = old["tf_hub_relu6"]
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
