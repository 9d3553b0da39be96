"""Finding the board's serial port: by USB VID:PID, because device names change between plugs and OSes.

An ESP32-S3 shows up either through its native USB-Serial-JTAG (303A:1001) or through a UART bridge
on a dev kit. The native port vanishes while the chip resets and comes back, possibly under another
name, so re-opening goes by serial number / VID:PID, not by the old path.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import UserError

NATIVE_USB = (0x303A, 0x1001)
KNOWN_IDS: dict[tuple[int, int], str] = {
    NATIVE_USB: "ESP32-S3 USB-Serial-JTAG",
    (0x10C4, 0xEA60): "CP210x UART bridge",
    (0x1A86, 0x7523): "CH340 UART bridge",
    (0x1A86, 0x55D4): "CH9102 UART bridge",
    (0x0403, 0x6001): "FTDI UART bridge",
}


@dataclass(frozen=True)
class Candidate:
    device: str
    vid: int
    pid: int
    kind: str
    serial_number: str | None = None
    description: str = ""

    @property
    def native_usb(self) -> bool:
        return (self.vid, self.pid) == NATIVE_USB

    def __str__(self) -> str:
        sn = f" s/n {self.serial_number}" if self.serial_number else ""
        return f"{self.device}  {self.vid:04X}:{self.pid:04X} {self.kind}{sn}"


def _list_ports() -> list[Any]:
    from serial.tools import list_ports

    return list(list_ports.comports())


def candidates(ports: Sequence[Any] | None = None) -> list[Candidate]:
    """Ports whose VID:PID is an ESP32-S3 (native USB) or a bridge commonly found on S3 dev kits."""
    found = []
    for p in _list_ports() if ports is None else ports:
        key = (p.vid, p.pid)
        if key in KNOWN_IDS:
            found.append(Candidate(p.device, p.vid, p.pid, KNOWN_IDS[key], p.serial_number, p.description or ""))
    return sorted(found, key=lambda c: (not c.native_usb, c.device))


def resolve(port: str, ask: Callable[[list[Candidate]], Candidate] | None = None,
            ports: Sequence[Any] | None = None) -> Candidate | str:
    """``auto`` -> the one board present (asking when several); any other name is returned as given."""
    if port != "auto":
        return port
    found = candidates(ports)
    if not found:
        raise UserError("no ESP32-S3 board found (looked for USB IDs " +
                        ", ".join(f"{v:04X}:{p:04X}" for v, p in KNOWN_IDS) +
                        "); plug it in with a data cable, or pass --port /dev/ttyACM0 (or --port sim).")
    if len(found) == 1:
        return found[0]
    if ask is None:
        raise UserError("several boards found; pick one with --port:\n  " + "\n  ".join(map(str, found)))
    return ask(found)


def ask_click(found: list[Candidate]) -> Candidate:
    """List the boards and let the user pick one by number."""
    import click

    for i, c in enumerate(found, 1):
        click.echo(f"  [{i}] {c}", err=True)
    n = click.prompt("several boards found; which one", type=click.IntRange(1, len(found)), err=True)
    return found[n - 1]


def wait_for(cand: Candidate, timeout: float = 10.0, poll: float = 0.2,
             ports: Callable[[], Sequence[Any]] | None = None) -> str:
    """Wait until the board re-enumerates after a reset; returns its (possibly new) device path."""
    deadline = time.monotonic() + timeout
    while True:
        for p in (ports or _list_ports)():
            if (p.vid, p.pid) == (cand.vid, cand.pid) and (
                    cand.serial_number is None or p.serial_number == cand.serial_number):
                return str(p.device)
        if time.monotonic() >= deadline:
            raise UserError(f"the board ({cand.vid:04X}:{cand.pid:04X}) did not come back within {timeout:.0f} s "
                            "after reset; unplug and replug it, then run the command again.")
        time.sleep(poll)


def open_serial(device: str, baud: int = 115200, timeout: float = 0.1) -> Any:
    """Open without touching DTR/RTS (no accidental reset or download mode) and with a clear busy error."""
    import serial

    s = serial.Serial(baudrate=baud, timeout=timeout, exclusive=True)
    s.port = device
    s.dtr = False
    s.rts = False
    try:
        s.open()
    except serial.SerialException as exc:
        no = getattr(exc, "errno", None)
        text = str(exc)
        if no in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in text or "busy" in text:
            raise UserError(f"{device} is busy: another program (a monitor, an IDE, a second yamflash) has it "
                            "open; close it and try again.") from None
        if no in (errno.ENOENT, errno.ENODEV, errno.ENXIO) or "No such file" in text:
            raise UserError(f"{device} does not exist; check the cable, or use --port auto.") from None
        if no == errno.EACCES or "Permission denied" in text:
            raise UserError(f"no permission to open {device}; add yourself to the 'dialout' (or 'uucp') group "
                            "and log in again.") from None
        raise UserError(f"cannot open {device}: {exc}") from None
    return s
