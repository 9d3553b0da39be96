"""The one place that decides whether a board is the virtual one or a serial port.

``target_from_spec("sim" | "auto" | PATH)`` builds a ``SimTarget`` (the virtual board's flash file, and its
process: found running, or started for this command) or a ``SerialTarget`` (a port, resolved as esptool would),
both with one interface: ``flash`` a build, ``open`` a connected ``Board``, ``open_port`` the raw console for the
monitor, ``reset`` right after opening, ``reopen_wait`` while the device is away and ``present``. flash, monitor,
validate, bench and the HIL pytest plugin go through it, as pytest-embedded's back ends sit behind one Dut.
"""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import UserError
from . import ports, wire

# esp_pylib's custom-reset language (the one esptool's config uses): DTR released (IO0 high), RTS
# asserted (EN low) for 0.2 s, then released; the 0.2 s suits the native USB's re-enumeration too.
DEFAULT_RESET = "D0|R1|W0.2|R0"
DEFAULT_SIM_FLASH = "build/sim/flash.bin"
Say = Callable[[str], None]


def hardware_reset(seq: str) -> Callable[[Any], None]:
    """A reset callable for a real board (esp_pylib's custom-reset language, as esptool's config uses)."""
    from esp_pylib.serial_reset import execute_custom_reset, parse_custom_reset_sequence

    try:
        parse_custom_reset_sequence(seq)
    except ValueError as exc:
        raise UserError(f"--reset-seq {seq!r} is not valid ({exc}); example: {DEFAULT_RESET}") from None

    def do(port: Any) -> None:
        with contextlib.suppress(OSError):  # a pty or a bridge without modem lines: nothing to toggle
            execute_custom_reset(port, seq)

    return do


def sim_reset(port: Any) -> None:
    """The virtual board has no EN line: ask it to reboot over the protocol."""
    port.write(wire.encode({"t": "cmd", "id": 0, "cmd": "reset"}))


class SimTarget:
    """The virtual board on ``flash_file``: the one already running there, else one started (and stopped on
    ``close``) with ``mic``/``fast``/``loop``/``stats_period``. ``fresh`` starts one even when one runs (the
    monitor's --mic needs its own)."""

    name = "sim"

    def __init__(self, flash_file: str | Path = DEFAULT_SIM_FLASH, mic: str | Path | None = None, fast: bool = False,
                 loop: bool = False, stats_period: float = 5.0, fresh: bool = False):
        self.flash_file = Path(flash_file)
        self.mic, self.fast, self.loop, self.stats_period, self.fresh = mic, fast, loop, stats_period, fresh
        self.spawned: Any = None  # sim.process.SimProcess when this target started the board
        self.device: str | None = None

    def flash(self, plan: Any, force: bool = False, say: Say = print, **_: Any) -> str:
        """Write every region the flash file does not hold byte for byte (all with ``force``); a running virtual
        board reboots into it, as a real one does after esptool. Returns "sim"."""
        from . import flash as fl
        from .sim.process import find_running

        todo = list(plan.regions) if force else fl.sim_differs(plan, self.flash_file)
        if not todo:
            say(f"the virtual board's flash ({self.flash_file}) already holds every image of {plan.source} (compared "
                "byte for byte); nothing to do (--force writes anyway)")
            return self.name
        fl.check_flash_size(plan, fl.SIM_FLASH_SIZE, "the virtual board")
        for r in fl.others(plan.regions, todo):
            say(fl.region_line(r, "already in flash (same bytes)"))
        for r in fl.flash_sim(plan.with_regions(todo), self.flash_file):
            say(fl.region_line(r, "written"))
        say(f"virtual board flash: {self.flash_file}")
        pty = find_running(self.flash_file)
        if pty:
            from .client import Board

            b = Board(ports.open_serial(pty), name=self.name)
            try:
                hello = b.reset(timeout=60)
                say(f"virtual board on {pty} rebooted: model {str(hello.get('model_sha256'))[:12]}")
            finally:
                b.close()
        return self.name

    def start(self) -> str:
        """The pty of the running board (started here when none runs); UserError when there is no flash."""
        from .sim.process import find_running, spawn

        if self.device is None and not self.fresh:
            self.device = find_running(self.flash_file)
        if self.device is None:
            if not self.flash_file.is_file():
                raise UserError(f"the virtual board has no flash ({self.flash_file}); run `yamflash flash --port sim`.")
            self.spawned = spawn(self.flash_file, mic=self.mic, fast=self.fast, loop=self.loop,
                                 stats_period=self.stats_period)
            self.device = self.spawned.pty
        return self.device

    def open_port(self, baud: int = 115200) -> Any:
        if self.device is None:
            raise OSError(errno.ENOENT, "the virtual board is not running")
        return ports.open_serial(self.device, baud=baud)

    def reset(self, enabled: bool = True, seq: str | None = None) -> Callable[[Any], None] | None:
        """A board this target started has just booted; one found running is asked to reboot."""
        return sim_reset if enabled and self.spawned is None else None

    def reopen_wait(self) -> None:
        """A board started here must still run; one found running may have restarted on a new pty (the old
        pty's name may now be someone else's terminal): find it again through sim.json."""
        from .sim.process import find_running

        if self.spawned is not None:
            code = self.spawned.proc.poll()
            if code is not None:
                raise UserError(f"the virtual board this command started has stopped (exit {code}); "
                                "run the command again.")
        else:
            self.device = find_running(self.flash_file)
        if self.device is None or self.spawned is not None:
            time.sleep(0.5)

    def present(self) -> bool:
        return self.device is not None and Path(self.device).exists()

    def close(self) -> None:
        if self.spawned is not None:
            self.spawned.stop()
            self.spawned = None


class SerialTarget:
    """A board on a serial port: ``spec`` is a device path or ``auto`` (the one USB serial port, or a question)."""

    def __init__(self, spec: str, reset_seq: str | None = None):
        self.spec, self.reset_seq = spec, reset_seq
        self.candidate: ports.Candidate | None = None  # a USB port, found again by serial number after a reset
        self.device: str | None = None
        self.name = spec

    def _resolve(self) -> str:
        target = ports.resolve(self.spec, ask=ports.ask_click)
        self.candidate = target if isinstance(target, ports.Candidate) else None
        self.device = self.candidate.device if self.candidate else str(target)
        self.name = self.device
        return self.device

    def flash(self, plan: Any, force: bool = False, say: Say = print, baud: int = 460800,
              progress: Any = None) -> str:
        """Write what the board's flash does not hold (MD5 per region) with esptool, then wait for a native
        USB port to come back. Returns the device the console is on afterwards."""
        from . import flash as fl

        fl.refuse_virtual_on_port(plan, self.spec)  # before the port is even opened
        device = self._resolve()
        say(f"flashing {plan.source or 'the build'} to {device}" + (" (--force: every region)" if force else ""))
        written = fl.flash_esptool(plan, device, baud, say=say, force=force, progress=progress)
        if self.candidate is not None and self.candidate.native_usb:
            say("waiting for the board's USB port to come back after reset")
            device = self.device = ports.wait_for(self.candidate, timeout=15)
        if not written:
            say(f"{device}: the flash already holds every region of this build (MD5 of each matches); nothing "
                "written, board reset (--force writes anyway)")
        else:
            say(f"done: wrote {', '.join(r.name for r in written)}; the board was reset into the new firmware "
                f"(yamflash monitor --port {device})")
        return device

    def start(self) -> str:
        """The device, resolved once; a path that does not exist is a typo or a cable, not a board to wait for."""
        if self.device is None:
            self._resolve()
        assert self.device is not None
        if self.candidate is None and self.device.startswith("/dev/") and not Path(self.device).exists():
            raise UserError(f"{self.device} does not exist; check the cable, or use --port auto.")
        self.candidate = self.candidate or ports.follow(self.device)  # a USB port by name: found again by serial
        return self.device

    def open_port(self, baud: int = 115200) -> Any:
        assert self.device is not None
        return ports.open_serial(self.device, baud=baud)

    def reset(self, enabled: bool = True, seq: str | None = None) -> Callable[[Any], None] | None:
        return hardware_reset(seq or self.reset_seq or DEFAULT_RESET) if enabled else None

    def reopen_wait(self) -> None:
        if self.candidate is not None:
            self.device = ports.wait_for(self.candidate, timeout=3600)
        else:
            time.sleep(0.5)

    def present(self) -> bool:
        return self.device is not None and Path(self.device).exists()

    def close(self) -> None:
        pass


Target = SimTarget | SerialTarget


def target_from_spec(spec: str, *, sim_flash: str | Path = DEFAULT_SIM_FLASH, mic: str | Path | None = None,
                     fast: bool = False, loop: bool = False, stats_period: float = 5.0, fresh: bool = False,
                     reset_seq: str | None = None) -> Target:
    """``sim``: the virtual board on ``sim_flash``; anything else (``auto``, a path, COM3): a serial port (the
    virtual board's settings do not apply to it)."""
    if spec == "sim":
        return SimTarget(sim_flash, mic=mic, fast=fast, loop=loop, stats_period=stats_period, fresh=fresh)
    return SerialTarget(spec, reset_seq=reset_seq)


@contextlib.contextmanager
def connect(target: Target, baud: int = 115200, timeout: float | None = None) -> Iterator[Any]:
    """A connected ``Board`` on ``target`` (started first), answering ``info``; stopped afterwards if started here."""
    from .client import Board

    try:
        device = target.start()
        board = Board(target.open_port(baud), name=target.name if isinstance(target, SimTarget) else device)
        try:
            if timeout is None:
                board.info()
            else:
                board.command("info", timeout=timeout)
            yield board
        finally:
            board.close()
    finally:
        target.close()


@contextlib.contextmanager
def open_board(spec: str, sim_flash: str | Path = DEFAULT_SIM_FLASH, stats_period: float = 5.0,
               baud: int = 115200) -> Iterator[Any]:
    """A connected Board for ``sim`` (the running virtual board, or one started for this command) or a port (its
    console at ``baud``)."""
    with connect(target_from_spec(spec, sim_flash=sim_flash, stats_period=stats_period), baud) as board:
        yield board
