"""What the monitor keeps of a board session: the live state (timings, detections, memory, bad lines) and the
sink every protocol line goes to (the state, ``--json`` on stdout, a ``--log`` JSONL file flushed per line).

The live view (view.py) and the monitor loop (monitor.py) both build on it, so neither imports the other's
module at start-up.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from . import wire


def percentile(values: Any, q: float) -> float | None:
    return float(np.percentile(np.asarray(values, np.float64), q)) if len(values) else None


@dataclass
class State:
    """Everything the live view shows, folded from events as they arrive."""

    window: int = 200
    hello: dict[str, Any] | None = None
    stats: dict[str, Any] | None = None
    detections: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=10))
    det_counts: Counter[str] = field(default_factory=Counter)  # every detection of the run, per label
    logs: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    errors: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=5))
    timing: dict[str, deque[float]] = field(default_factory=dict)
    infer_times: deque[float] = field(default_factory=lambda: deque(maxlen=50))
    bad_lines: int = 0
    events: int = 0
    timings_seen: int = 0  # inferences this monitor saw (the board's stats count since boot, every 5 s)
    reconnects: int = 0
    connected: bool = False
    port: str = ""

    def __post_init__(self) -> None:
        self.timing = {k: deque(maxlen=self.window) for k in ("frontend_us", "invoke_us", "e2e_us")}

    def add(self, msg: dict[str, Any], now: float | None = None) -> None:
        self.events += 1
        t = msg.get("t")
        if t == "hello":
            self.hello = msg
        elif t == "reply" and msg.get("cmd") == "info" and msg.get("ok"):
            self.hello = {**msg, "t": "hello"}  # re-asked after a reconnect: what hello said while nobody listened
        elif t == "stats":
            self.stats = msg
        elif t == "det":
            self.detections.appendleft(msg)
            self.det_counts[str(msg.get("label", msg.get("cls")))] += 1
        elif t == "err":
            self.errors.appendleft(msg)
        elif t == "timing":
            self.timings_seen += 1
            for k, q in self.timing.items():
                v = msg.get(k)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    q.append(float(v))
            self.infer_times.append(time.monotonic() if now is None else now)

    def latency(self, key: str) -> tuple[float | None, float | None]:
        q = self.timing[key]
        return percentile(q, 50), percentile(q, 95)

    def rate(self) -> float | None:
        """Inferences per second over the recent timing events."""
        ts = self.infer_times
        return (len(ts) - 1) / (ts[-1] - ts[0]) if len(ts) >= 2 and ts[-1] > ts[0] else None

    def arena(self) -> dict[str, Any] | None:
        src = self.stats or self.hello or {}
        a = src.get("arena")
        return a if isinstance(a, dict) else None

    def summary(self) -> dict[str, Any]:
        lat = {k: dict(zip(("p50", "p95"), self.latency(k), strict=False)) for k in self.timing}
        s = self.stats or {}
        h = self.hello or {}
        return {"t": "summary", "latency_us": lat, "inferences_per_s": self.rate(), "arena": self.arena(),
                "heap_free": s.get("heap_free", h.get("heap_free")),
                "psram_free": s.get("psram_free", h.get("psram_free")),
                "dropped_samples": s.get("dropped_samples"), "detections": sum(self.det_counts.values()),
                "detections_per_class": dict(self.det_counts), "inferences": s.get("inferences", self.timings_seen),
                "bad_lines": self.bad_lines, "reconnects": self.reconnects, "clock": h.get("clock"),
                "fw": h.get("fw"), "model_sha256": h.get("model_sha256"), "mem": h.get("mem", "measured")}


def fmt_us(v: float | None) -> str:
    return "-" if v is None else (f"{v / 1000:.1f} ms" if v >= 1000 else f"{v:.0f} us")


def fmt_bytes(v: Any) -> str:
    return "-" if not isinstance(v, int | float) else f"{v / 1024:,.0f} KiB"


class Sink:
    """Where events go: the live state, stdout as JSON lines, a JSONL file flushed per line."""

    def __init__(self, state: State, json_out: IO[str] | None = None, log_file: IO[str] | None = None,
                 echo_log: Callable[[str], None] | None = None):
        self.state, self.json_out, self.log_file, self.echo_log = state, json_out, log_file, echo_log

    def _record(self, obj: dict[str, Any]) -> None:
        line = json.dumps(obj, separators=(",", ":"))
        for f in (self.json_out, self.log_file):
            if f is not None:
                try:
                    f.write(line + "\n")
                    f.flush()
                except OSError as exc:  # a full disk under --log is not a lost port: stop and say so
                    from ..errors import UserError
                    from ..outputs import describe

                    raise UserError(describe(exc, getattr(f, "name", None), flag="--log" if f is self.log_file
                                                                               else None)) from None

    def line(self, item: wire.Line) -> None:
        now = time.time()
        if item.kind == "log":
            self.state.logs.append(item.text)
            if self.echo_log:
                self.echo_log(item.text)
            self._record({"t": "log", "text": item.text, "host_ts": round(now, 3)})
        elif item.kind == "bad":
            self.state.bad_lines += 1
        else:
            self.state.add(item.msg)
            self._record({**item.msg, "host_ts": round(now, 3)})
