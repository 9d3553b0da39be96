"""What a person sees in `yamflash monitor`: the board's log as sent, the monitor's own lines, a live status.

Device text is never interpreted: on a terminal it goes out as rich ``Text`` (ANSI colours of ESP-IDF's log
kept, ``[bold]`` or ``[file.c:141]`` shown as they are), in plain mode (stdout not a terminal, or --plain)
it is written byte for byte, one line per line, so a pipe or a file gets every line and not only a final
frame. The monitor's own lines start with ``---`` as esp-idf-monitor's do. On a terminal the log scrolls
in the terminal's own scrollback above a live status (firmware, model, clock, latency, memory, detections)
that also pins the last panic, so a Guru Meditation never scrolls away unseen.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from . import wire
from .panic import BACKTRACE, Decoder, Panic, is_panic
from .status import Sink, State, fmt_bytes, fmt_us

# YAMNet's framing: a patch is 0.975 s of audio, a new one every 0.48 s (docs/protocol.md: ts_ms = patch*480 + 975)
PATCH_S, HOP_S = 0.975, 0.48


def clip_patches(seconds: float) -> int:
    """Patches the frontend makes from a clip of ``seconds`` (no loop)."""
    return 0 if seconds < PATCH_S else int((seconds - PATCH_S) // HOP_S) + 1


def short_clip_warning(seconds: float, window: int, min_count: int) -> str | None:
    """Why a clip can never fire the detector (fewer patches than min_count), or None when it can."""
    n = clip_patches(seconds)
    if n >= min_count:
        return None
    need = PATCH_S + (min_count - 1) * HOP_S
    return (f"the clip is {seconds:.2f} s: {n} patch{'es' if n != 1 else ''} of audio, but the detector fires only "
            f"when {min_count} of {window} patches score above its threshold, so it can never fire; play a clip of "
            f"at least {need:.2f} s (or lower min_count: yamflash gen --min-count 1)")


def top_k(q: bytes, scale: float, zp: int, labels: list[str], k: int) -> list[tuple[str, float]]:
    """The k highest scores of one inference, from the board's raw int8 output."""
    s = (np.frombuffer(q, np.int8).astype(np.float32) - zp) * scale
    idx = np.argsort(-s, kind="stable")[:k]
    return [(labels[i] if i < len(labels) else f"class {i}", float(s[i])) for i in idx]


@dataclass
class Extra:
    """What the view keeps beside status.State: panics, per-class counts, the start time."""

    t0: float = field(default_factory=time.monotonic)
    panics: list[Panic] = field(default_factory=list)
    in_panic: bool = False
    stopped: bool = False
    said_hello: str = ""


class View:
    """Turns lines and events into what is shown. ``write(text, style)`` puts one line on the screen or stdout."""

    def __init__(self, state: State, write: Callable[[str, str | None], None], labels: list[str] | None = None,
                 scores: int = 0, decoder: Decoder | None = None):
        self.state, self.write, self.labels = state, write, labels or []
        self.scores, self.decoder = scores, decoder or Decoder(None, None)
        self.extra = Extra()

    def mine(self, text: str, style: str | None = "dim") -> None:
        self.write(f"--- {text}", style)

    def on_line(self, item: wire.Line) -> None:
        if item.kind == "log":
            self._log(item.text)
        elif item.kind == "msg":
            self._event(item.msg)

    def _log(self, text: str) -> None:
        if text.startswith("[yamflash monitor] "):  # run()'s own notes (reconnects, lost port)
            self.mine(text[len("[yamflash monitor] "):], "yellow")
            return
        ex = self.extra
        if is_panic(text):
            ex.panics.append(Panic(text))
            ex.in_panic = True
            self.write(text, "bold red")
            return
        self.write(text, None)
        if ex.in_panic and BACKTRACE in text:
            p = ex.panics[-1]
            p.backtrace = text.strip()
            p.decoded = self.decoder.decode(text)
            for d in p.decoded:
                self.write(f"--- {d}", "red")
            ex.in_panic = False

    def _event(self, msg: dict[str, Any]) -> None:
        t = msg.get("t")
        if t in ("hello", "reply") and (t == "hello" or (msg.get("cmd") == "info" and msg.get("ok"))):
            line = self.board_line()
            if line != self.extra.said_hello:  # every (re)connect asks info: say it again only when it changed
                self.extra.said_hello = line
                self.mine(line, "cyan")
        elif t == "det":
            self.write(f"--- detected {msg.get('label')} {float(msg.get('score', 0)):.2f} at "
                       f"{msg.get('ts_ms', 0) / 1000:.2f} s of audio (patch {msg.get('patch')})", "bold green")
        elif t == "err":
            self.mine(f"board error {msg.get('code')}: {msg.get('msg')}", "bold red")
        elif t == "scores" and self.scores:
            out = (self.state.hello or {}).get("output") or {}
            if "scale" not in out or not isinstance(msg.get("q"), str):
                return
            try:
                q = wire.unb64(msg["q"])
            except Exception:  # a bad payload is the protocol's to count, not the view's to crash on
                return
            top = top_k(q, float(out["scale"]), int(out.get("zp", 0)), self.labels, self.scores)
            self.write(f"--- patch {msg.get('patch')}: " + " | ".join(f"{lab} {s:.2f}" for lab, s in top), None)
        elif t == "reply" and not msg.get("ok"):
            self.mine(f"the board refused {msg.get('cmd')}: {msg.get('err')} {msg.get('msg', '')}", "red")

    def board_line(self) -> str:
        h = self.state.hello or {}
        if not h:
            return "board: not heard from yet (info asked)"
        clock = h.get("clock", "?")
        caveat = " (this PC's timings, not the chip's)" if clock == "host" else ""
        mem = ", heap/PSRAM figures nominal" if h.get("mem") == "nominal" else ""
        return (f"board {h.get('board', '?')}: fw {h.get('fw', '?')}, model {str(h.get('model_sha256', '?'))[:12]}, "
                f"{h.get('labels', '?')} labels, timings on the {clock} clock{caveat}{mem}")

    def summary(self) -> dict[str, Any]:
        s = self.state.summary()
        s["seconds"] = round(time.monotonic() - self.extra.t0, 1)
        s["panics"] = [p.lines() for p in self.extra.panics]
        return s

    def summary_lines(self) -> list[str]:
        s = self.summary()
        h = self.state.hello or {}
        per = s.get("detections_per_class") or {}
        lat = s["latency_us"]
        clock = s.get("clock") or "?"
        lines = [f"summary after {s['seconds']:.1f} s: {s.get('inferences') or 0} inferences, "
                 f"{s['detections']} detections" + (": " + ", ".join(f"{k} x{v}" for k, v in per.items()) if per
                                                     else ""),
                 f"latency ({clock} clock{', not chip figures' if clock == 'host' else ''}): "
                 f"end to end p50 {fmt_us(lat['e2e_us']['p50'])} p95 {fmt_us(lat['e2e_us']['p95'])}, "
                 f"invoke p50 {fmt_us(lat['invoke_us']['p50'])} p95 {fmt_us(lat['invoke_us']['p95'])}",
                 f"dropped audio {s['dropped_samples'] if s['dropped_samples'] is not None else '-'} samples, "
                 f"reconnects {s['reconnects']}, bad lines {s['bad_lines']}, panics {len(s['panics'])}"]
        if h.get("mem") == "nominal":
            lines.append("memory: the virtual board's heap/PSRAM figures are nominal (an ESP32-S3 budget), "
                         "not measured")
        for p in self.extra.panics[-1:]:
            lines += ["last panic: " + p.first] + [f"  {x}" for x in p.lines()[1:]]
        return lines


def render(st: State, view: View) -> Any:
    """The live status under the scrolling log: board line, detections, latency, memory, the last panic."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    h = st.hello or {}
    s = st.stats or {}
    nominal = h.get("mem") == "nominal"
    if view.extra.stopped:
        where = Text(f"{st.port} stopped after {time.monotonic() - view.extra.t0:.0f} s", style="bold")
    elif st.connected:
        where = Text(f"{st.port} connected", style="bold green")
    else:
        where = Text(f"{st.port} waiting for the board", style="bold red")
    head = Text.assemble(where, "  ", view.board_line())
    clock = h.get("clock")
    det = Table("label", "score", "audio time", "patch", title="recent detections", expand=True)
    for d in st.detections:
        det.add_row(Text(str(d.get("label"))), f"{d.get('score', 0):.2f}", f"{d.get('ts_ms', 0) / 1000:.2f} s",
                    str(d.get("patch")))
    title = "latency" + (" (host clock: this PC, not the chip)" if clock == "host" else
                         " (chip clock)" if clock == "chip" else "")
    perf = Table("", "p50", "p95", title=title, expand=True)
    for key, name in (("frontend_us", "frontend / frame"), ("invoke_us", "invoke"), ("e2e_us", "end to end")):
        p50, p95 = st.latency(key)
        perf.add_row(name, fmt_us(p50), fmt_us(p95))
    rate = st.rate()
    a = st.arena() or {}
    tag = " (nominal)" if nominal else ""
    info = Table.grid(padding=(0, 2))
    info.add_row("inferences/s", "-" if rate is None else f"{rate:.2f}", "inferences", str(s.get("inferences", "-")))
    info.add_row("arena", f"{fmt_bytes(a.get('used'))} / {fmt_bytes(a.get('size'))} in {a.get('where', '?')}",
                 "dropped audio", f"{s.get('dropped_samples', '-')} samples")
    info.add_row("heap free" + tag, fmt_bytes(s.get("heap_free", h.get("heap_free"))),
                 "PSRAM free" + tag, fmt_bytes(s.get("psram_free", h.get("psram_free"))))
    info.add_row("bad lines", f"{st.bad_lines} here, {s.get('bad_lines', '-')} on board",
                 "reconnects", str(st.reconnects))
    per = dict(st.det_counts)
    info.add_row("detections", ", ".join(f"{k} x{v}" for k, v in per.items()) or "none", "", "")
    parts: list[Any] = [head, det, perf, info]
    if st.errors:
        parts.append(Text("\n".join(f"{e.get('code')}: {e.get('msg')}" for e in st.errors), style="red"))
    if view.extra.panics:
        p = view.extra.panics[-1]
        parts.append(Panel(Text("\n".join(p.lines())), title=f"last panic ({len(view.extra.panics)} in all)",
                           border_style="red"))
    if view.extra.stopped:
        parts.append(Panel(Text("\n".join(view.summary_lines())), title="summary", border_style="cyan"))
    return Group(*parts)


def plain_writer(out: IO[str]) -> Callable[[str, str | None], None]:
    """Lines as they are, flushed one by one (a pipe reader sees each line when it happens)."""

    def write(text: str, style: str | None) -> None:
        out.write(text + "\n")
        out.flush()

    return write


def console_writer(console: Any) -> Callable[[str, str | None], None]:
    """Lines above the live status; ESP-IDF's ANSI colours honoured, nothing else interpreted."""
    from rich.text import Text

    def write(text: str, style: str | None) -> None:
        t = Text.from_ansi(text) if "\x1b" in text else Text(text)
        if style:
            t.stylize(style)
        console.print(t, soft_wrap=True, highlight=False, markup=False)

    return write


class ViewSink(Sink):
    """status.Sink (state, --json, --log as before) that also shows every line and event."""

    def __init__(self, view: View, **kw: Any):
        super().__init__(view.state, **kw)
        self.view = view

    def line(self, item: wire.Line) -> None:
        super().line(item)
        self.view.on_line(item)


def is_terminal(stream: IO[str] | None = None) -> bool:
    s = stream or sys.stdout
    return bool(getattr(s, "isatty", lambda: False)())
