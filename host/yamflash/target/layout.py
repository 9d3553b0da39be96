"""Choose the fastest memory layout for the chip that keeps every output bit: graph rewrites x arena x model place.

Why: on the ESP32-S3 the converted YAMNet is estimated at ~484 ms per Invoke with arena and model in PSRAM and
~760 ms with the model memory-mapped from flash, against a 480 ms hop (chip/estimate.py). Most of it is ESP-NN
re-reading 1x1 filters from PSRAM and a 1 MiB scratch copy the arena must hold. The rewrites of
chip/rewrite.py change neither arithmetic nor output; which ones pay depends on the layout, so every candidate
is estimated (esp-nn 1.2 dispatch, the board's PSRAM kind, the firmware's 64 KB/64 B data cache) in every layout
the firmware can use, and the fastest that fits the board is kept:

- arena: internal RAM when the chip arena plus the firmware's internal reserve fits the profile's largest
  internal block (the rule of arena.placement and yf_inference.cpp's AllocArena), else PSRAM;
- model: copied into PSRAM at boot when model + arena fit the PSRAM (``--model-place psram``), else
  memory-mapped from flash.

The chosen model is then checked bit-exact against the unrewritten one on real patches in TFLite Micro before
it replaces it; model.json's ``layout`` records the candidates, their estimates and the choice. The chip-arena
measurement of the chosen model (chip_arena.py) is recorded in ``arena`` as before; gen places it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..chip import cost as est
from ..chip import rewrite
from ..chip.memory import FIRMWARE, Layout
from ..errors import UserError
from . import arena, profiles

# Candidate rewrite sets: (pad 1x1 positions to 8, split 1x1 convs to this ESP-NN scratch or None, stem conv as
# depthwise).
CANDIDATES: tuple[tuple[bool, int | None, bool], ...] = tuple(
    (pad, split, stem) for stem in (False, True) for pad in (False, True) for split in (None, 16384, 32768, 65536))
BOARDS = ("esp32s3-n16r8", "esp32s3-n8r2")  # the boards whose layouts model.json records (first: the goal's)
PUBLISHED = "a published ESP32-S3 YAMNet port (arena + model in PSRAM): 500-650 ms, p95 508 ms"
CHECK_PATCHES = 8  # real patches the chosen model must reproduce bit for bit before it replaces the original


def _name(pad: bool, max_scratch: int | None, stem: bool) -> str:
    parts = (["stem as depthwise"] if stem else []) + (["pad 1x1 positions to 8"] if pad else []) + \
        ([f"split 1x1 (scratch <= {max_scratch // 1024} KB)"] if max_scratch else [])
    return " + ".join(parts) or "as converted"


def board_layouts(prof: profiles.Profile, arena_bytes: int, model_bytes: int) -> list[tuple[str, Layout, bool, str]]:
    """(name, layout, fits, why not) for every arena x model place the firmware can use on ``prof``."""
    base = FIRMWARE.with_(psram=prof.psram if prof.psram in ("octal", "quad") else "octal")
    internal_ok = arena_bytes + arena.INTERNAL_RESERVE <= prof.internal_free
    out = []
    for arena_where in ("internal", "psram"):
        for model_where in ("psram", "flash"):
            in_psram = (arena_bytes if arena_where == "psram" else 0) + (model_bytes if model_where == "psram" else 0)
            why = []
            if arena_where == "internal" and not internal_ok:
                why.append(f"arena ~{arena_bytes:,} B + {arena.INTERNAL_RESERVE // 1024} KiB reserve > largest "
                           f"internal block {prof.internal_free:,} B")
            if in_psram > prof.psram_bytes:
                why.append(f"{in_psram:,} B in PSRAM > {prof.psram_bytes // profiles.MB} MB")
            name = f"arena {arena_where}, model {'PSRAM copy' if model_where == 'psram' else 'mmap flash'}"
            out.append((name, base.with_(arena=arena_where, model=model_where), not why, "; ".join(why)))
    return out


def _estimate(tflite: bytes) -> tuple[list[Any], dict[str, int]]:
    with tempfile.TemporaryDirectory() as td:
        p = Path(td) / "model.tflite"
        p.write_bytes(tflite)
        layers = est.layers_from_model(p)
    return layers, est.chip_arena(layers, est.DEFAULT_GEN)


def candidates(tflite: bytes) -> list[dict[str, Any]]:
    """Every rewrite candidate x board x layout, estimated (ms) with its arena estimate and whether it fits."""
    rows = []
    seen: set[str] = set()
    for pad, max_scratch, stem in CANDIDATES:
        model, done = rewrite.apply(tflite, pad, max_scratch, stem)
        what = repr([d["ops"] for d in done])
        if what in seen:
            continue  # a rewrite with nothing to do in this model: the same graph as an earlier candidate
        seen.add(what)
        layers, arena_est = _estimate(model)
        for board in BOARDS:
            prof = profiles.get(board)
            for name, lo, fits, why in board_layouts(prof, arena_est["total"], len(model)):
                r = est.run(layers, est.DEFAULT_GEN, lo)
                rows.append({"rewrite": _name(pad, max_scratch, stem), "pad": pad, "max_scratch": max_scratch,
                             "stem": stem,
                             "board": board, "layout": name, "arena": lo.arena, "model": lo.model,
                             "invoke_ms": round(r["ms"], 1), "arena_estimate": arena_est["total"],
                             "arena_nonpersistent": arena_est["nonpersistent"], "model_bytes": len(model),
                             "ops": len(layers), "fits": fits, "why_not": why})
    return rows


def best(rows: list[dict[str, Any]], board: str) -> dict[str, Any]:
    """The fastest fitting row for ``board`` (ties: fewer ops)."""
    ok = [r for r in rows if r["board"] == board and r["fits"]]
    return min(ok, key=lambda r: (r["invoke_ms"], r["ops"]))


def bit_exact(original: bytes, rewritten: bytes, patches: np.ndarray) -> dict[str, Any]:
    """Run both models on ``patches`` (float log-mel [n, 96, 64]) in TFLite Micro's reference kernels: every
    int8 output must be identical."""
    from ..frontend import quantize
    from ..model.tflm import MicroModel

    a, b = MicroModel(original), MicroModel(rewritten)
    si, zi = a.input_quant
    n = 0
    for p in patches:
        q = quantize(p, si, zi)
        if not np.array_equal(a.run_int8(q), b.run_int8(q)):
            return {"identical": False, "patches": n + 1, "kernels": "TFLite Micro reference (tflite-micro package)"}
        n += 1
    return {"identical": True, "patches": n, "kernels": "TFLite Micro reference (tflite-micro package)"}


def choose(tflite: bytes, patches: np.ndarray | None, log: Any = None) -> tuple[bytes, dict[str, Any]]:
    """The model with the rewrites whose layout is estimated fastest on the first of BOARDS, checked bit-exact on
    ``patches`` (kept unrewritten when a check fails or there are no patches), and model.json's ``layout``."""
    t0 = time.monotonic()
    rows = candidates(tflite)
    goal = best(rows, BOARDS[0])
    base = best([r for r in rows if r["rewrite"] == "as converted"], BOARDS[0])
    model, done = rewrite.apply(tflite, goal["pad"], goal["max_scratch"], goal["stem"])
    check: dict[str, Any] = {"identical": None, "patches": 0, "kernels": "none: no rewrite"}
    if done:
        if patches is None or not len(patches):
            check = {"identical": None, "patches": 0, "kernels": "not checked: no real patches"}
        else:
            check = bit_exact(tflite, model, patches[:CHECK_PATCHES])
        if not check["identical"]:
            if log:
                log(f"graph rewrite '{goal['rewrite']}' kept unapplied: {check}")
            model, done, goal = tflite, [], base
    per_board = {b: best([r for r in rows if r["rewrite"] == goal["rewrite"]], b) for b in BOARDS}
    rec = {
        "rewrites": done,
        "rewrite": goal["rewrite"] if done else "as converted",
        "bit_exact_check": check,
        "chosen": {b: {k: r[k] for k in ("layout", "arena", "model", "invoke_ms", "arena_estimate")}
                   for b, r in per_board.items()},
        "unrewritten": {k: base[k] for k in ("layout", "invoke_ms", "arena_estimate")},
        "candidates": rows,
        "estimate_basis": f"chip/estimate.py, esp-nn {est.DEFAULT_GEN} dispatch, 240 MHz, data cache 64 KB/64 B; "
                          f"+-{est.calibration_error():.0%} (worst held-back check, scripts/bench_estimate.py)",
        "published": PUBLISHED,
        "seconds": round(time.monotonic() - t0, 1),
    }
    if log:
        c = rec["chosen"][BOARDS[0]]
        log(f"chip layout for {BOARDS[0]}: {rec['rewrite']}, {c['layout']}: ~{c['invoke_ms']:.0f} ms per Invoke "
            f"estimated (as converted: ~{base['invoke_ms']:.0f} ms)")
    return model, rec


def confirm(rec: dict[str, Any], arena_rec: dict[str, Any] | None, model_bytes: int) -> dict[str, Any]:
    """Re-check each board's chosen placement with the chip arena measured on the chosen model (chip_arena.py;
    model.json's ``arena.chip_espnn``) instead of the estimator's approximation: where the measured arena no
    longer fits internal RAM (or PSRAM), the fastest layout of the same rewrite that fits is taken."""
    measured = arena_rec.get("chip_espnn") if isinstance(arena_rec, dict) else None
    if not isinstance(measured, int) or measured <= 0:
        rec["placement_from"] = "the estimator's arena (no chip-arena measurement)"
        return rec
    rec["placement_from"] = f"the measured chip arena ({measured:,} B)"
    for board in BOARDS:
        prof = profiles.get(board)
        rows = {r["layout"]: r for r in rec["candidates"] if r["board"] == board and r["rewrite"] == rec["rewrite"]}
        fitting = [(name, rows[name]) for name, _, fits, _ in board_layouts(prof, measured, model_bytes)
                   if fits and name in rows]
        if not fitting:
            continue
        name, r = min(fitting, key=lambda nr: nr[1]["invoke_ms"])
        rec["chosen"][board] = {k: r[k] for k in ("layout", "arena", "model", "invoke_ms")} | \
            {"arena_estimate": r["arena_estimate"], "arena_measured": measured}
    return rec


PLACES = ("psram", "flash")
PSRAM_RESERVE = 256 * 1024  # PSRAM left for everything else that allocates there (audio ring, console buffers)


def model_place(prof: profiles.Profile, storage: str, wanted: str | None, model_bytes: int, arena_bytes: int,
                arena_where: str) -> str:
    """Where the firmware reads a raw-partition model: a copy in PSRAM or the memory-mapped flash.

    Default ("auto"/None): the copy whenever model + arena (if in PSRAM) + PSRAM_RESERVE fit the board's PSRAM,
    because a line fill from PSRAM is never slower than one from QIO flash (chip/memory.py: 177 cycles per
    64-byte line from octal PSRAM, ~450 from flash; quad PSRAM ~ flash): estimated 280 vs 346 ms per Invoke for
    the converted YAMNet on the N16R8 (model.json ``layout``). SPIFFS storage always copies; the virtual board
    and the N8R2's 2 MB of PSRAM keep the mapping."""
    if storage == "spiffs":
        return "psram"
    if wanted not in (None, "auto", *PLACES):
        raise UserError(f"model place {wanted!r}: use auto, psram or flash.")
    if prof.sim:
        if wanted == "psram":
            raise UserError("the sim profile reads the model from its partition file; drop --model-place psram.")
        return "flash"
    need = model_bytes + (arena_bytes if arena_where == "psram" else 0) + PSRAM_RESERVE
    fits = need <= prof.psram_bytes
    if wanted == "psram" and not fits:
        raise UserError(f"{prof.name} has {prof.psram_bytes // profiles.MB} MB of PSRAM, but the model copy "
                        f"({model_bytes:,} B) + the arena ({arena_bytes:,} B, {arena_where}) + "
                        f"{PSRAM_RESERVE // 1024} KiB reserve need {need:,} B; use --model-place flash.")
    if wanted in PLACES:
        return str(wanted)
    return "psram" if fits else "flash"


def recorded(tflite_path: str | Path) -> dict[str, Any] | None:
    """model.json's ``layout`` beside a .tflite, when it describes exactly that file (same sha256)."""
    import hashlib
    import json

    path = Path(tflite_path)
    try:
        m = json.loads((path.parent / "model.json").read_text())
        same = m["model"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        lay = m["layout"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return lay if same and isinstance(lay, dict) else None
