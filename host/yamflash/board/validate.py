"""Prove that what runs on the board is what was converted: device outputs against host references.

Like STM32Cube.AI's ``validate``: the same inputs go to the board and to the host, and named metrics say
how far apart the outputs are. Two inputs per clip, so a mismatch can be pinned on the right stage:
- ``patch``: the host's own int8 patches sent to the board: isolates the board's interpreter (ESP-NN vs
  TFLite Micro's reference kernels on the host). Expected bit-exact on the virtual board.
- ``pcm``: the clip's PCM through the board's frontend and interpreter, compared with TFLite Micro on the
  host frontend's patches: the whole on-device path. ``frontend`` compares the patches themselves.
- ``float``: the board's PCM-path scores against the float model: what quantization costs in the end.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..manifest import ModelManifest
from ..model.fidelity import compare

# Gate direction: a "higher is better" metric fails under its threshold, an error metric fails over it.
HIGHER_BETTER = ("bit_exact", "patch_bit_exact", "cosine", "top1", "top5", "clip_top1", "equal")
LOWER_BETTER = ("max_lsb", "l2_rel", "rmse", "mae", "max_abs", "max_logmel")
SECTIONS = ("patch", "pcm", "float", "frontend")


# ---- metrics -------------------------------------------------------------------------------------------
def score_metrics(test: np.ndarray, ref: np.ndarray, lsb: float | None = None) -> dict[str, Any]:
    """Float score metrics [n, classes] (via fidelity.compare), plus the largest difference in output LSB."""
    test = np.asarray(test, np.float64).reshape(len(test), -1)
    ref = np.asarray(ref, np.float64).reshape(len(ref), -1)
    if test.shape != ref.shape:
        raise UserError(f"cannot compare outputs of shapes {test.shape} and {ref.shape}; is the board running "
                        "the model in --model-dir?")
    if not len(ref):
        return {"patches": 0}
    c = compare(ref, test)
    out = {"patches": c["patches"], "cosine": c["cosine_mean"], "cosine_min": c["cosine_min"],
           "l2_rel": c["l2_relative_mean"], "rmse": c["rmse"], "mae": c["mae"], "max_abs": c["max_abs_error"],
           "top1": c["top1_agreement"], "top5": c["top5_overlap"], "clip_top1": clip_top1(test, ref)}
    if lsb:
        out["max_lsb"] = int(round(float(np.abs(test - ref).max()) / lsb))
    return out


def int8_metrics(test_q: np.ndarray, ref_q: np.ndarray, scale: float, zp: int) -> dict[str, Any]:
    """int8 outputs compared as integers (bit-exact rate, largest LSB difference) and as dequantized scores."""
    from ..frontend import dequantize

    t = np.asarray(test_q, np.int8).reshape(len(test_q), -1)
    r = np.asarray(ref_q, np.int8).reshape(len(ref_q), -1)
    m = score_metrics(dequantize(t, scale, zp), dequantize(r, scale, zp))
    if not len(r):
        return m
    diff = np.abs(t.astype(np.int32) - r.astype(np.int32))
    m.update(bit_exact=round(float(np.mean(diff == 0)), 6), patch_bit_exact=round(float(np.mean(diff.max(1) == 0)), 6),
             max_lsb=int(diff.max()))
    return m


def clip_top1(test: np.ndarray, ref: np.ndarray) -> float:
    """1.0 when the clip-level class (argmax of the mean score over patches, as YAMNet's tutorial) agrees."""
    return float(np.argmax(np.mean(test, 0)) == np.argmax(np.mean(ref, 0))) if len(ref) else float("nan")


def frontend_metrics(board_q: np.ndarray, host_logmel: np.ndarray, scale: float, zp: int) -> dict[str, Any]:
    """The board's int8 patches against the host frontend: in int8 LSB and in log-mel (natural log) units.

    The log-mel error is against the host's float patches clipped to the int8 range, so it includes the
    half-LSB of quantization the board cannot avoid (about scale / 2).
    """
    from ..frontend import dequantize, quantize

    b = np.asarray(board_q, np.int8)
    h = np.asarray(host_logmel, np.float32)
    if b.shape != h.shape:
        raise UserError(f"the board sent patches of shape {b.shape}, the host frontend made {h.shape}")
    if not b.size:
        return {"patches": 0}
    hq = quantize(h, scale, zp)
    lsb = np.abs(b.astype(np.int32) - hq.astype(np.int32))
    lo, hi = (-128 - zp) * scale, (127 - zp) * scale
    err = np.abs(dequantize(b, scale, zp) - np.clip(h, lo, hi))
    return {"patches": int(len(b)), "equal": round(float(np.mean(lsb == 0)), 6), "max_lsb": int(lsb.max()),
            "max_logmel": round(float(err.max()), 6), "quant_step": round(float(scale), 6)}


# ---- references on the host -----------------------------------------------------------------------------
@dataclass
class Reference:
    """The host side: TFLite Micro on the converted model, and the float model when it can be rebuilt."""

    manifest: ModelManifest
    model: bytes
    micro: Any
    float_model: Any = None
    float_note: str = ""
    labels: list[str] = field(default_factory=list)

    @property
    def in_q(self) -> tuple[float, int]:
        return self.micro.input_quant

    @property
    def out_q(self) -> tuple[float, int]:
        return self.micro.output_quant

    def float_scores(self, patches: np.ndarray) -> np.ndarray | None:
        if self.float_model is None:
            return None
        from ..model.keras import float_scores

        return float_scores(self.float_model, patches)


def load_reference(model_dir: str | Path, with_float: bool = True,
                   reference_model: str | Path | None = None) -> Reference:
    """model.json + model.tflite from ``model_dir``; the float YAMNet from the weights the manifest names.
    ``reference_model``: another .tflite the host runs instead (e.g. the model before convert's bit-exact chip
    rewrites, target/layout.py), with the same input and output quantization."""
    from ..model.tflm import MicroModel

    d = Path(model_dir)
    m = ModelManifest.load(d / "model.json")
    if not m.model_path.is_file():
        raise UserError(f"{m.model_path} is missing; run `yamflash convert --out {d}` again.")
    data = m.model_path.read_bytes()
    micro = MicroModel(data)
    if reference_model is not None:
        try:
            other = MicroModel(Path(reference_model).read_bytes())
        except OSError as exc:
            raise UserError(f"--reference-model {reference_model}: {exc.strerror}; pass a .tflite file.") from None
        if (other.input_quant, other.output_quant) != (micro.input_quant, micro.output_quant):
            raise UserError(f"--reference-model {reference_model} quantizes its input/output differently from "
                            f"{m.model_path}; it cannot be the same model before rewrites.")
        micro = other
    ref = Reference(m, data, micro, labels=list(m.labels))
    n_out = int(ref.micro.out["shape"][-1])
    if len(ref.labels) != n_out:
        ref.labels = [f"class_{i}" for i in range(n_out)]
    wpath = m.weights_path
    if not with_float:
        ref.float_note = "float comparison skipped (--no-float)"
    elif m.trained:
        ref.float_note = "float comparison unavailable: the trained head's float weights are not stored"
    elif not wpath or not Path(wpath).is_file():
        ref.float_note = f"float comparison unavailable: weights {wpath or '(none in model.json)'} not found"
    else:
        from ..model.keras import build
        from ..model.weights import load_weights

        w = load_weights(wpath)
        if w.kernels["logits"].shape[1] != n_out:
            ref.float_note = "float comparison unavailable: the weights' classes differ from the model's"
        else:
            ref.float_model = build(w)
    return ref


# ---- the run ------------------------------------------------------------------------------------------
def audio_files(inputs: Sequence[str | Path]) -> list[Path]:
    from ..audio import list_audio

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += list_audio(p)
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"--audio {p} does not exist; pass audio files or folders.")
    if not files:
        raise UserError("no audio to validate with; pass --audio FILE|DIR.")
    return files


@dataclass
class ClipData:
    """Everything measured for one clip, kept for the overall metrics and the plot."""

    name: str
    pcm: np.ndarray
    host_logmel: np.ndarray  # [n, 96, 64] float patches of the host frontend
    host_q: np.ndarray  # [n, classes] int8, TFLM on the host's patches
    board_pcm_q: np.ndarray  # [n, classes] int8, board on its own frontend's patches
    board_patch_q: np.ndarray  # [n, classes] int8, board on the host's patches
    board_patches: np.ndarray  # [n, 96, 64] int8 patches of the board's frontend
    float_scores: np.ndarray | None


def run_clip(board: Any, ref: Reference, path: Path) -> ClipData:
    from ..audio import load_audio
    from ..frontend import log_mel, patches, quantize
    from .client import to_pcm16

    pcm = to_pcm16(load_audio(path))
    logmel = patches(log_mel(pcm.astype(np.float32) / np.float32(32768.0)))
    si, zi = ref.in_q
    host_in = quantize(logmel, si, zi)
    got = board.infer_pcm(pcm, patches=True)
    host_q = np.stack([ref.micro.run_int8(p) for p in host_in]) if len(host_in) else got["scores"][:0]
    by_patch = np.stack([board.infer_patch(p) for p in host_in]) if len(host_in) else got["scores"][:0]
    return ClipData(path.name, pcm, logmel, host_q, got["scores"], by_patch, got["patches"],
                    ref.float_scores(logmel) if len(logmel) else None)


def clip_metrics(c: ClipData, ref: Reference) -> dict[str, Any]:
    from ..frontend import dequantize

    si, zi = ref.in_q
    so, zo = ref.out_q
    out: dict[str, Any] = {"clip": c.name, "seconds": round(len(c.pcm) / 16000, 3), "patches": int(len(c.host_q))}
    if not len(c.host_q):
        out["note"] = "shorter than one patch (0.975 s): nothing to compare"
        return out
    out["patch"] = int8_metrics(c.board_patch_q, c.host_q, so, zo)
    out["pcm"] = int8_metrics(c.board_pcm_q, c.host_q, so, zo)
    if c.float_scores is not None:
        out["float"] = score_metrics(dequantize(c.board_pcm_q, so, zo), c.float_scores, lsb=so)
    out["frontend"] = frontend_metrics(c.board_patches, c.host_logmel, si, zi)
    return out


def overall(clips: list[ClipData], ref: Reference) -> dict[str, Any]:
    """The same metrics over all patches of all clips; clip_top1 is the fraction of clips that agree."""
    use = [c for c in clips if len(c.host_q)]
    if not use:
        return {"patches": 0}
    merged = ClipData("all", np.concatenate([c.pcm for c in use]), np.concatenate([c.host_logmel for c in use]),
                      np.concatenate([c.host_q for c in use]), np.concatenate([c.board_pcm_q for c in use]),
                      np.concatenate([c.board_patch_q for c in use]), np.concatenate([c.board_patches for c in use]),
                      None if any(c.float_scores is None for c in use)
                      else np.concatenate([c.float_scores for c in use]))  # type: ignore[misc]
    out = clip_metrics(merged, ref)
    per = [clip_metrics(c, ref) for c in use]
    for sec in ("patch", "pcm", "float"):
        if sec in out:
            out[sec]["clip_top1"] = round(float(np.mean([p[sec]["clip_top1"] for p in per])), 4)
    out.pop("clip")
    out["clips"] = len(use)
    return out


def validate(board: Any, model_dir: str | Path, audio: Sequence[str | Path], plot_dir: str | Path | None = None,
             with_float: bool = True, say: Any = None, reference_model: str | Path | None = None) -> dict[str, Any]:
    """Run every clip through the board and the host; per-clip and overall metrics (and PNGs when asked)."""
    ref = load_reference(model_dir, with_float, reference_model)
    info = board.info()
    want = ref.manifest.model.sha256
    if info.get("model_sha256") != want:
        raise UserError(f"the board runs model {str(info.get('model_sha256'))[:12]}, {model_dir} holds {want[:12]}; "
                        "flash it (`yamflash flash`) or pass the matching --model-dir.")
    files = audio_files(audio)
    clips, rows = [], []
    for f in files:
        if say:
            say(f"  {f.name} ...")
        c = run_clip(board, ref, f)
        clips.append(c)
        rows.append(clip_metrics(c, ref))
        if plot_dir is not None and len(c.host_q):
            from ..plots import clip_figure

            rows[-1]["png"] = str(clip_figure(c, ref, Path(plot_dir) / f"{Path(f).stem}.png"))
    return {"schema": 1, "kind": "yamflash-validate", "board": info.get("board"), "clock": info.get("clock"),
            "fw": info.get("fw"), "model_sha256": info.get("model_sha256"), "model_dir": str(model_dir),
            "reference_model": str(reference_model) if reference_model else None,
            "float_note": ref.float_note or None, "clips": rows, "overall": overall(clips, ref)}


# ---- gates and output ------------------------------------------------------------------------------------
def parse_gate(text: str) -> tuple[str, str, float]:
    """``SECTION.METRIC=VALUE`` (e.g. ``patch.bit_exact=1``); UserError naming what is valid."""
    name, sep, value = text.partition("=")
    sec, dot, metric = name.strip().partition(".")
    if not sep or not dot or sec not in SECTIONS or metric not in HIGHER_BETTER + LOWER_BETTER:
        raise UserError(f"--fail-under {text!r}: write SECTION.METRIC=VALUE with SECTION one of {', '.join(SECTIONS)} "
                        f"and METRIC one of {', '.join(HIGHER_BETTER + LOWER_BETTER)}, e.g. patch.bit_exact=1.")
    try:
        return sec, metric, float(value)
    except ValueError:
        raise UserError(f"--fail-under {text!r}: {value!r} is not a number.") from None


def check_gates(report: dict[str, Any], gates: Sequence[str]) -> str | None:
    """The first failed gate as one line, or None. Error metrics fail over the value, the others under it."""
    for g in gates:
        sec, metric, limit = parse_gate(g)
        value = report["overall"].get(sec, {}).get(metric)
        if value is None:
            return f"gate {sec}.{metric} failed: no {sec} {metric} was measured"
        lower = metric in LOWER_BETTER
        if (value > limit) if lower else (value < limit):
            return f"gate {sec}.{metric} failed: {value:g} {'>' if lower else '<'} {limit:g}"
    return None


_INT8_COLUMNS = (("patch", "bit_exact", "patch\nexact", "{:.4f}"), ("patch", "max_lsb", "patch\nmax LSB", "{}"),
                 ("pcm", "bit_exact", "pcm\nexact", "{:.4f}"), ("pcm", "max_lsb", "pcm\nmax LSB", "{}"),
                 ("pcm", "cosine", "pcm\ncosine", "{:.4f}"), ("pcm", "top1", "pcm\ntop-1", "{:.0%}"),
                 ("frontend", "max_lsb", "fe max\nLSB", "{}"),
                 ("frontend", "max_logmel", "fe max\nlog-mel", "{:.3f}"))
_FLOAT_COLUMNS = (("float", "cosine", "cosine", "{:.4f}"), ("float", "l2_rel", "L2 rel", "{:.3f}"),
                  ("float", "rmse", "RMSE", "{:.4f}"), ("float", "mae", "MAE", "{:.4f}"),
                  ("float", "top1", "patch\ntop-1", "{:.1%}"), ("float", "clip_top1", "clip\ntop-1", "{:.0%}"))


def _table(report: dict[str, Any], title: str, columns: tuple[tuple[str, str, str, str], ...], caption: str) -> Any:
    from rich.table import Table

    t = Table(title=title, caption=caption)
    t.add_column("clip", overflow="ellipsis", max_width=24, no_wrap=True)
    t.add_column("n", justify="right")
    for _, _, head, _ in columns:
        t.add_column(head, justify="right")
    for name, r, style in [*((c["clip"], c, None) for c in report["clips"]), ("all", report["overall"], "bold")]:
        cells = []
        for sec, metric, _, fmt in columns:
            v = r.get(sec, {}).get(metric)
            cells.append("-" if v is None else fmt.format(v))
        t.add_row(name, str(r.get("patches", 0)), *cells, style=style)
    return t


def render(report: dict[str, Any]) -> list[Any]:
    """rich tables, one row per clip and one for all patches: int8 parity, then fidelity to the float model."""
    out = [_table(report, f"board {report['board']} ({report['clock']} clock) vs TFLite Micro on the host",
                  _INT8_COLUMNS, "patch: host patches in; pcm: the board's own frontend; LSB: int8 steps")]
    if "float" in report["overall"]:
        out.append(_table(report, "board (pcm path) vs the float model", _FLOAT_COLUMNS,
                          "scores in 0..1; clip top-1: class of the mean score over the clip"))
    elif report.get("float_note"):
        out.append(report["float_note"])
    return out


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o))
