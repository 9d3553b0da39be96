"""Progress for long work (conversion, calibration, flashing): a bar on a terminal, plain lines in logs."""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def log(msg: str) -> None:
    print(f"[yamflash] {msg}", file=sys.stderr, flush=True)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a rich progress bar on a TTY, or a start/end line otherwise."""
    items = list(items) if total is None else items
    total = len(items) if total is None else total  # type: ignore[arg-type]
    if sys.stderr.isatty():
        from rich.progress import track as rich_track

        yield from rich_track(items, description=description, total=total, transient=True, console=None)
        return
    t0 = time.monotonic()
    log(f"{description} ({total})")
    yield from items
    log(f"{description}: done in {time.monotonic() - t0:.1f} s")


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
