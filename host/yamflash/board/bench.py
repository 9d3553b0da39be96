"""How fast and how big the model is on the board, in the shape of TFLite's ``benchmark_model``.

Init time, first inference, warm-up and steady-state statistics of ``Invoke``, the frontend per frame
and end-to-end latency while streaming real audio, the real-time factor against the 0.48 s patch hop,
a per-op profile when the firmware's profiler reports one, arena, memory low-water marks and flash use.
Stored as JSON so that a later run can be compared with it (``--baseline``) and regressions fail CI.
Every number comes from the board; the virtual board's are host timings and the report says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..manifest import read_json

PATCH_HOP_US = 480_000.0
FRAMES_PER_HOP = 48
STAT_KEYS = ("n", "mean", "std", "min", "p50", "p90", "p99", "max")

# Metrics compared with a baseline: (dotted path, True when lower is better).
COMPARED: tuple[tuple[str, bool], ...] = (
    ("init.load_us", True), ("init.alloc_us", True), ("first_invoke_us", True),
    ("invoke_us.mean", True), ("invoke_us.p50", True), ("invoke_us.p90", True), ("invoke_us.p99", True),
    ("frontend_us_per_frame.mean", True), ("e2e_us.p90", True), ("arena.used", True),
    ("flash.app_bytes", True), ("flash.model_bytes", True),
    ("memory.heap_min", False), ("memory.psram_min", False), ("memory.stack_hwm_min", False),
)
TIMING_PREFIXES = ("init.", "first_invoke_us", "invoke_us.", "frontend_us_per_frame.", "e2e_us.")


def nearest_rank(sorted_values: np.ndarray, p: int) -> float:
    """The smallest value with at least p % of the values at or below it: yf_stats.c's percentile, so a
    figure here means what the chip's bench reply means (never interpolated)."""
    rank = (p * len(sorted_values) + 99) // 100
    return float(sorted_values[max(rank, 1) - 1])


def summarize(values: Sequence[float]) -> dict[str, float] | None:
    """n, mean, std, min, p50, p90, p99, max (nearest-rank percentiles, population std)."""
    a = np.sort(np.asarray(values, np.float64))
    if not a.size:
        return None
    p50, p90, p99 = (nearest_rank(a, p) for p in (50, 90, 99))
    return {"n": int(a.size), "mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()),
            "p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(a.max())}


def op_profile(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The board's per-op-type times, largest first, with share and cumulative share."""
    rows = sorted(({"op": str(o["op"]), "us": float(o["us"])} for o in ops), key=lambda r: -r["us"])
    total = sum(r["us"] for r in rows) or 1.0
    cum = 0.0
    for r in rows:
        cum += r["us"]
        r["share"], r["cumulative"] = r["us"] / total, cum / total
    return rows


def flash_usage(plan_path: str | Path | None) -> dict[str, Any] | None:
    """App and model image sizes against their partitions, from the build's flash manifest."""
    if plan_path is None or not Path(plan_path).is_file():
        return None
    from .flash import load_plan

    plan = load_plan(plan_path)
    regions = []
    for r in plan.regions:
        part = next((p for p in plan.table if p.offset == r.offset), None)
        regions.append({"name": r.name, "offset": r.offset, "bytes": len(r.data),
                        "partition": part.name if part else None, "partition_bytes": part.size if part else None,
                        "used": round(len(r.data) / part.size, 4) if part else None})
    by = {r["name"]: r["bytes"] for r in regions}
    return {"manifest": str(plan_path), "regions": regions, "app_bytes": by.get("app"),
            "model_bytes": by.get("model"), "total_bytes": sum(by.values())}


def _stream_audio(audio: str | Path | None, seconds: float) -> np.ndarray:
    """int16 PCM for the streaming part: the given clip (looped to length), else seeded noise."""
    n = int(seconds * 16000)
    if audio is None:
        rng = np.random.default_rng(0)
        return (rng.standard_normal(n) * 3000).clip(-32768, 32767).astype(np.int16)
    from ..audio import load_audio
    from .client import to_pcm16

    pcm = to_pcm16(load_audio(audio))
    return np.resize(pcm, n)


def run_bench(board: Any, n: int = 50, warmup: int = 5, audio: str | Path | None = None, seconds: float = 10.0,
              reset: bool = True, manifest: str | Path | None = None, stats_timeout: float = 7.0,
              say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure on ``board``: reset (for init and a true first inference), stream audio, then `bench`."""
    if n < 1 or warmup < 0 or seconds < 1.0:
        raise UserError("bench needs --n >= 1, --warmup >= 0 and --seconds >= 1.")
    note = say or (lambda s: None)
    hello = board.reset() if reset else {**board.info(), "t": "hello"}
    first = board.bench(1)["invoke_us"]["mean"] if reset else None
    note(f"streaming {seconds:.0f} s of audio through the board's frontend and model ...")
    board.source("host")
    mark = board.mark()
    board.send_pcm(_stream_audio(audio, seconds))
    from .client import count_patches

    expect = count_patches(int(seconds * 16000))
    board.wait_event(lambda e: e.get("t") == "timing" and e.get("patch") == expect - 1, 30 + expect * 5, since=mark)
    timing = board.of_type("timing", mark)
    warm = board.bench(warmup)["invoke_us"] if warmup else None
    note(f"invoking {n} times ...")
    steady = board.bench(n)
    stats = board.wait_event(lambda e: e.get("t") == "stats", stats_timeout, since=mark)
    inv = {"n": int(steady.get("n", n)), **{k: float(v) for k, v in steady["invoke_us"].items()}}
    fe = summarize([t["frontend_us"] for t in timing])
    e2e = summarize([t["e2e_us"] for t in timing])
    hwm = stats.get("stack_hwm") or {}
    clock = str(hello.get("clock", "chip"))
    init = hello.get("init_us")
    ops = steady.get("ops")
    report: dict[str, Any] = {
        "schema": 1, "kind": "yamflash-bench", "clock": clock, "board": hello.get("board"), "fw": hello.get("fw"),
        "model_sha256": hello.get("model_sha256"), "model_bytes": hello.get("model_bytes"),
        "timings_note": ("host timings: the virtual board runs on this computer; they say nothing about the chip"
                         if clock == "host" else "chip timings"),
        "init": ({"load_us": init.get("load"), "alloc_us": init.get("alloc")} if isinstance(init, dict) else None),
        "first_invoke_us": first,
        "warmup": ({"n": warmup, **{k: float(v) for k, v in warm.items()}} if warm else None),
        "invoke_us": inv,
        "stream_invoke_us": summarize([t["invoke_us"] for t in timing]),
        "frontend_us_per_frame": fe,
        "e2e_us": e2e,
        "rtf": {"invoke": inv["mean"] / PATCH_HOP_US,
                "frontend": (fe["mean"] * FRAMES_PER_HOP / PATCH_HOP_US) if fe else None},
        "ops": op_profile(ops) if ops else None,
        "ops_note": None if ops else (
            "per-op profile unavailable on the virtual board: the tflite-micro Python package exposes no "
            "profiler (see `yamflash bench --estimate` for a static per-op estimate)" if clock == "host"
            else "per-op profile unavailable: the firmware reported none"),
        "arena": hello.get("arena"),
        "memory": {"heap_free": hello.get("heap_free"), "psram_free": hello.get("psram_free"),
                   "heap_min": stats.get("heap_min"), "psram_min": stats.get("psram_min"),
                   "stack_hwm": hwm, "stack_hwm_min": min(hwm.values()) if hwm else None,
                   "dropped_samples": stats.get("dropped_samples")},
        "flash": flash_usage(manifest),
    }
    if report["rtf"]["frontend"] is not None:
        report["rtf"]["total"] = report["rtf"]["invoke"] + report["rtf"]["frontend"]
    return report


# ---- baseline ------------------------------------------------------------------------------------------
def _get(d: dict[str, Any], path: str) -> float | None:
    cur: Any = d
    for k in path.split("."):
        if not isinstance(cur, dict) or k not in cur:
            return None
        cur = cur[k]
    return float(cur) if isinstance(cur, (int, float)) and not isinstance(cur, bool) else None


def compare_baseline(report: dict[str, Any], baseline: dict[str, Any], tolerance: float = 0.10) -> list[dict[str, Any]]:
    """Each compared metric present in both, with its relative change and whether it regressed."""
    if tolerance < 0:
        raise UserError("--tolerance must be >= 0 (a fraction, 0.1 = 10 %).")
    same_clock = report.get("clock") == baseline.get("clock")
    rows = []
    for path, lower_better in COMPARED:
        if not same_clock and path.startswith(TIMING_PREFIXES):
            continue  # chip and host timings are different quantities: never compared
        new, old = _get(report, path), _get(baseline, path)
        if new is None or old is None:
            continue
        change = (new - old) / old if old else (0.0 if new == old else float("inf"))
        worse = change > tolerance if lower_better else change < -tolerance
        rows.append({"metric": path, "baseline": old, "value": new, "change": change, "regressed": bool(worse)})
    return rows


def load_report(path: str | Path) -> dict[str, Any]:
    doc = read_json(path, f"baseline {path} does not exist; write one with `yamflash bench --out {path}`.",
                    f"baseline {path} is not readable JSON ({{exc}}).")
    if not isinstance(doc, dict) or doc.get("kind") != "yamflash-bench":
        raise UserError(f"{path} is not a `yamflash bench` report.")
    return doc


def write_report(path: str | Path, report: dict[str, Any]) -> None:
    from ..manifest import atomic_write

    atomic_write(path, json.dumps(report, indent=2) + "\n")


# ---- output -------------------------------------------------------------------------------------------
def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.2f}"


def render(report: dict[str, Any], comparison: list[dict[str, Any]] | None = None) -> list[Any]:
    """rich renderables: timing statistics, per-op profile, memory and flash, and the baseline comparison."""
    from rich.table import Table

    out: list[Any] = []
    t = Table(title=f"yamflash bench: {report['board']} fw {report['fw']} ({report['clock']} clock)",
              caption=report["timings_note"])
    t.add_column("ms")
    for k in STAT_KEYS:
        t.add_column(k, justify="right")
    for name, key in (("warm-up invoke", "warmup"), ("invoke / patch", "invoke_us"),
                      ("invoke (streaming)", "stream_invoke_us"), ("frontend / frame", "frontend_us_per_frame"),
                      ("end-to-end / patch", "e2e_us")):
        s = report.get(key)
        if s:
            t.add_row(name, *(str(s["n"]) if k == "n" else _ms(s.get(k)) for k in STAT_KEYS))
    out.append(t)
    init = report.get("init") or {}
    rtf = report["rtf"]
    out.append(f"init: model load {_ms(init.get('load_us'))} ms, interpreter + AllocateTensors "
               f"{_ms(init.get('alloc_us'))} ms; first invoke {_ms(report.get('first_invoke_us'))} ms; "
               f"real-time factor {rtf['invoke']:.3g} (invoke) / {rtf.get('total', rtf['invoke']):.3g} "
               "(+ frontend) of the 0.48 s hop")
    if report.get("ops"):
        p = Table(title="per-op profile (mean per invoke)")
        for c in ("op", "ms", "share", "cumulative"):
            p.add_column(c, justify="left" if c == "op" else "right")
        for r in report["ops"]:
            p.add_row(r["op"], _ms(r["us"]), f"{r['share']:.1%}", f"{r['cumulative']:.1%}")
        out.append(p)
    else:
        out.append(str(report["ops_note"]))
    a, m = report.get("arena") or {}, report["memory"]
    out.append(f"arena: {a.get('used', 0):,} of {a.get('size', 0):,} bytes used, in {a.get('where')}; "
               f"min free heap {m.get('heap_min') or 0:,} bytes, min free PSRAM {m.get('psram_min') or 0:,} bytes; "
               f"stack high-water {m.get('stack_hwm') or 'not reported'}")
    fl = report.get("flash")
    if fl:
        out.append("flash: " + "; ".join(
            f"{r['name']} {r['bytes']:,} bytes" + (f" ({r['used']:.0%} of {r['partition']})" if r["used"] else "")
            for r in fl["regions"]))
    else:
        out.append("flash: no flash manifest given (--manifest build/firmware/<board>/flash.json)")
    if report.get("estimate"):
        e = report["estimate"]
        out.append(f"static estimate for the chip: invoke ~{e['invoke_ms']:.0f} ms "
                   f"({e['invoke_ms_range'][0]:.0f}-{e['invoke_ms_range'][1]:.0f} ms)")
        if e.get("chip_layout"):
            from ..chip.report import layout_lines

            out += [ln.strip() for ln in layout_lines(e["chip_layout"])]
    if comparison is not None:
        c = Table(title="against the baseline")
        for col in ("metric", "baseline", "now", "change", ""):
            c.add_column(col, justify="left" if col in ("metric", "") else "right")
        for r in comparison:
            c.add_row(r["metric"], f"{r['baseline']:,.0f}", f"{r['value']:,.0f}", f"{r['change']:+.1%}",
                      "REGRESSION" if r["regressed"] else "", style="red" if r["regressed"] else None)
        out.append(c)
    return out
