"""Running the virtual board as its own process, and finding it again for ``--port sim``.

A separate process (not a thread in the client) so that it behaves like a board: it keeps running
across client connections, its timings are not disturbed by the client's Python, and a client can
crash without taking it down. ``sim.json`` beside the flash file says which pty and pid it has.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ...errors import UserError
from ...manifest import atomic_write

DEFAULT_FLASH = Path("build/sim/flash.bin")


def state_file(flash: str | Path) -> Path:
    return Path(flash).with_name("sim.json")


def write_state(flash: str | Path, pty: str) -> None:
    atomic_write(state_file(flash), json.dumps({"pty": pty, "pid": os.getpid(), "flash": str(flash)}) + "\n")


def check_flash(flash: str | Path) -> None:
    """Up front, for `yamflash sim`: the flash file must exist (a typo would otherwise start a blank board
    without a word), and the folder must take ``sim.json``, which is how clients find the board."""
    from ...outputs import check_file

    p = Path(flash)
    if not p.is_file():
        what = "is not a file" if p.exists() else "does not exist"
        raise UserError(f"--flash {p} {what}; write the virtual board's flash first: "
                        f"`yamflash flash --port sim --sim-flash {p}`.")
    check_file(state_file(p), "--flash")


def check_mic(mic: str | Path) -> None:
    """Up front: the microphone file decodes as audio (not later, in the capture thread, as a traceback)."""
    from ...audio import load_audio

    if not Path(mic).is_file():
        raise UserError(f"--mic {mic} does not exist; pass a WAV file.")
    load_audio(mic)


def find_running(flash: str | Path = DEFAULT_FLASH) -> str | None:
    """The pty of a virtual board already running on ``flash``, or None."""
    try:
        st = json.loads(state_file(flash).read_text())
        os.kill(int(st["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(st["pty"]) if Path(st["pty"]).exists() else None


@dataclass
class SimProcess:
    proc: subprocess.Popen[str]
    pty: str

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def spawn(flash: str | Path = DEFAULT_FLASH, mic: str | Path | None = None, fast: bool = False,
          loop: bool = False, stats_period: float = 5.0, timeout: float = 60.0) -> SimProcess:
    """Start `yamflash sim` in the background and return once its pty exists."""
    cmd = [sys.executable, "-m", "yamflash", "sim", "--flash", str(flash), "--stats-period", str(stats_period)]
    if mic:
        cmd += ["--mic", str(mic)]
    if fast:
        cmd.append("--fast")
    if loop:
        cmd.append("--loop")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("virtual board on "):
            return SimProcess(proc, line.split()[3])
    proc.kill()
    raise UserError(f"the virtual board did not start (exit {proc.poll()}); run `yamflash sim` to see why.")


def serve(flash: str | Path, mic: str | Path | None = None, fast: bool = False, loop: bool = False,
          stats_period: float = 5.0) -> None:
    """Foreground virtual board: print its pty (the one line on stdout), serve until SIGINT/SIGTERM."""
    import threading

    from .device import VirtualBoard

    board = VirtualBoard(flash, mic=mic, fast=fast, loop=loop, stats_period=stats_period)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    board.start()
    write_state(flash, board.path)
    print(f"virtual board on {board.path} (flash {flash}; stop with Ctrl-C)", flush=True)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        board.close()
        state_file(flash).unlink(missing_ok=True)
