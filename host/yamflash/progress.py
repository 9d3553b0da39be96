"""Progress for long work (conversion, calibration, flashing): a bar on a terminal, plain lines in logs."""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def log(msg: str) -> None:
    print(f"[yamflash] {msg}", file=sys.stderr, flush=True)


def fmt_seconds(s: float) -> str:
    """A duration as a person reads it: "45 s", "3 min 05 s"."""
    s = max(0.0, s)
    return f"{s:.0f} s" if s < 60 else f"{int(s // 60)} min {int(s % 60):02d} s"


class Steps:
    """Counted steps of a long loop with an ETA: a bar on a TTY, otherwise a line at most every ``every`` s
    (so a log or CI run shows the work is moving and how long is left, never minutes of silence)."""

    def __init__(self, description: str, total: int, every: float = 15.0):
        self.description, self.total, self.every = description, max(1, total), every
        self.done, self.t0 = 0, time.monotonic()
        self._last = self.t0
        self._bar: Any = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self._bar = Progress("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task(description, total=self.total)
            self._bar.start()
        else:
            log(f"{description}: {self.total} steps")

    def eta(self) -> float | None:
        """Seconds left at the mean pace so far; None before the first step."""
        if not self.done:
            return None
        return (time.monotonic() - self.t0) / self.done * (self.total - self.done)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.advance(self._task, n)
            return
        now = time.monotonic()
        if now - self._last >= self.every and self.done < self.total:
            self._last = now
            log(f"{self.description}: {self.done}/{self.total} steps, about {fmt_seconds(self.eta() or 0)} left")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        log(f"{self.description}: {self.done}/{self.total} steps in {fmt_seconds(time.monotonic() - self.t0)}")

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a rich progress bar on a TTY, or a start/end line otherwise."""
    items = list(items) if total is None else items
    total = len(items) if total is None else total  # type: ignore[arg-type]
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import track as rich_track

        # stderr, like the plain lines: stdout is for results (--json) and the bar must never land in them
        yield from rich_track(items, description=description, total=total, transient=True,
                              console=Console(stderr=True))
        return
    with Steps(description, total) as steps:  # in a log: a line every 15 s with the time left
        for item in items:
            yield item
            steps.advance()


@contextlib.contextmanager
def captured_chatter() -> Iterator[None]:
    """Keep TensorFlow's export chatter (its `Saved artifact at ...` and TensorSpec listings, printed on
    stdout for every converted graph) off the screen and out of --json; shown on stderr only if the work fails."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    except BaseException:
        sys.stderr.write(buf.getvalue())
        raise
