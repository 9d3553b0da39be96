"""The estimate as people read it: per-layer and per-op-type tables, and the layout convert recorded in
model.json (`yamflash inspect --estimate`, `bench --estimate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .cost import (
    PATCH_HOP_S,
    PUBLISHED_PORT,
)
from .memory import INTERNAL_ARENA_BUDGET


def recorded_layout(path: str | Path) -> dict[str, Any] | None:
    """The chip layout `convert` chose and recorded in the model.json beside ``path`` (target/layout.py), when
    that model.json describes exactly this file: rewrites applied, the estimate per board, the unrewritten one."""
    import hashlib
    import json

    p = Path(path)
    try:
        m = json.loads((p.parent / "model.json").read_text())
        if m["model"]["sha256"] != hashlib.sha256(p.read_bytes()).hexdigest():
            return None
        lay = m["layout"]
        return {"rewrite": lay["rewrite"], "chosen": lay["chosen"], "unrewritten": lay["unrewritten"],
                "bit_exact_check": lay["bit_exact_check"], "chip_arena_measured": (m.get("arena") or {})
                .get("chip_espnn"), "published": PUBLISHED_PORT}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def layout_lines(lay: dict[str, Any]) -> list[str]:
    """The recorded chip layout as text (inspect --estimate, bench --estimate)."""
    chk = lay["bit_exact_check"]
    exact = (f"bit-exact on {chk['patches']} real patches in TFLite Micro" if chk.get("identical")
             else "no rewrite" if not chk.get("patches") else "check failed: unrewritten")
    out = [f"  chip layout chosen by convert (model.json): {lay['rewrite']} ({exact})"]
    for board, c in lay["chosen"].items():
        out.append(f"    {board:<14} {c['layout']:<34} ~{c['invoke_ms']:.0f} ms per Invoke, real-time factor "
                   f"{c['invoke_ms'] / 1000 / PATCH_HOP_S:.2f}")
    u = lay["unrewritten"]
    arena = f"; chip arena measured {lay['chip_arena_measured']:,} B" if lay.get("chip_arena_measured") else ""
    out.append(f"    as converted, unrewritten: ~{u['invoke_ms']:.0f} ms ({u['layout']}){arena}")
    out.append(f"    for comparison: the {lay['published']}")
    return out


def by_op_type(est: dict[str, Any]) -> list[dict[str, Any]]:
    """Layers summed per op type, largest first, with share and cumulative share (like a TFLM profile)."""
    sums: dict[str, float] = {}
    for r in est["layers"]:
        sums[r["op"]] = sums.get(r["op"], 0.0) + r["us"]
    total = sum(sums.values()) or 1.0
    rows, cum = [], 0.0
    for op, us in sorted(sums.items(), key=lambda kv: -kv[1]):
        cum += us
        rows.append({"op": op, "us": round(us, 1), "share": us / total, "cumulative": cum / total})
    return rows


def render(est: dict[str, Any], per_layer: bool = False) -> str:
    """Plain-text summary for the CLI: totals, layouts, per-op-type and (optionally) per-layer tables."""
    lo, hi = est["invoke_ms_range"]
    arena = est["chip_arena_estimate"]
    lines = [f"estimate for ESP32-S3 + ESP-NN (not a measurement): {est['path']}",
             f"  layout: {est['layout']}; esp-nn {est['esp_nn']} kernels",
             f"  {est['macs'] / 1e6:.1f} M MACs, invoke ~{est['invoke_ms']:.0f} ms ({lo:.0f}-{hi:.0f} ms, "
             f"+-{est['uncertainty']:.0%} = worst held-back check), real-time factor {est['rtf']:.2f} of the "
             f"0.48 s hop",
             f"  compute {est['compute_ms']:.0f} ms + memory stalls {est['memory_ms']:.0f} ms; "
             f"{est['copy_bytes']:,} bytes copied into scratch and {est['external_bytes']:,} bytes over the "
             f"flash/PSRAM bus per Invoke",
             f"  flash {est['model_bytes']:,} bytes model"
             + (f", host arena {est['arena_bytes']:,} bytes" if est.get("arena_bytes") else "")
             + f"; chip arena ~{arena['total']:,} bytes (largest ESP-NN scratch {arena['largest_scratch']:,})"]
    if est["tflm_verdict"] != "runs":
        lines.append(f"  warning: TFLite Micro {est['tflm_verdict']}: the int8 ESP-NN cost model does not apply")
    lines.append("  layouts (same esp-nn, same cache):")
    for r in est["layouts"]:
        lines.append(f"    {r['name']:<40} {r['invoke_ms']:7.0f} ms  arena ~{r['arena_estimate']:>9,} B"
                     + ("" if r["fits"] else f"  does not fit: {r['why_not']}"))
    if est.get("chip_layout"):
        lines += layout_lines(est["chip_layout"])
    best = [r for r in est.get("rewrites", []) if r["fits"]][:4]
    if best:
        lines.append(f"  what-if graph rewrites on this graph's shapes (internal RAM budget assumed "
                     f"{INTERNAL_ARENA_BUDGET // 1024} KB; fastest that fit):")
        for r in best:
            lines.append(f"    {r['rewrite']:<42} {r['name']:<34} {r['invoke_ms']:6.0f} ms  "
                         f"arena ~{r['arena_estimate']:,} B")
    over = [r for r in est["layers"] if r.get("scratch_overflow")]
    if over:
        lines.append("  warning: esp-nn " + est["esp_nn"] + " writes past its scratch request in op(s) "
                     + ", ".join(f"#{r['index']} (+{r['scratch_overflow']:,} B)" for r in over)
                     + ": the depthwise pad_end copy is not tiled like the size function assumes")
    lines.append("  per op type:")
    for r in by_op_type(est):
        lines.append(f"    {r['op']:<20} {r['us'] / 1000:8.1f} ms  {r['share']:6.1%}  cum {r['cumulative']:6.1%}")
    if per_layer:
        lines.append(f"  {'#':>3} {'op':<18} {'output':<17} {'kernel':<44} {'scratch':>9} {'copied':>9} "
                     f"{'passes':>6} {'ms':>7}")
        for r in est["layers"]:
            lines.append(f"  {r['index']:>3} {r['op']:<18} {str(r['output']):<17} {r['kernel'][:44]:<44} "
                         f"{r['scratch_bytes']:>9,} {r['copy_bytes']:>9,} {r['filter_passes']:>6} "
                         f"{r['us'] / 1000:>7.2f}")
    lines.append(f"  basis: {est['basis']}")
    return "\n".join(lines)
