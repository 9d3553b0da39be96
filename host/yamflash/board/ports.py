"""Finding the board's serial port the way esptool finds it, and naming what is behind each port.

Discovery is esptool's own: esp-pylib's ``serial_ports.get_port_list`` (what esptool 5 scans when no port is
given: pyserial's ``comports()`` without the OS's virtual ports, Espressif's USB devices first, then
ttyUSB/ttyACM). ``yamflash ports`` lists every port it returns; ``--port auto`` picks among the USB ones.

What is behind a port is told without resetting anything, from the USB VID:PID only: Espressif's
USB-Serial-JTAG (esptool's ESPRESSIF_VID:USB_JTAG_SERIAL_PID, 303A:1001) is the chip's own USB, so an
ESP32-S3/C3-class chip; behind a UART bridge the chip cannot be known without talking to its ROM (which
resets it), so the bridge is named instead.

The native port vanishes while the chip resets and comes back, possibly under another name, so re-opening
goes by serial number / VID:PID, not by the old path.
"""

from __future__ import annotations

import errno
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError

try:  # the identifiers esptool itself uses (esp-pylib ships with esptool >= 5.2)
    from esp_pylib.constants import ESPRESSIF_VID, USB_JTAG_SERIAL_PID
except ImportError:  # older esptool 5 releases keep the same values on ESPLoader
    ESPRESSIF_VID, USB_JTAG_SERIAL_PID = 0x303A, 0x1001

NATIVE_USB = (ESPRESSIF_VID, USB_JTAG_SERIAL_PID)
NATIVE_CHIP = "ESP32-S3/C3-class"  # USB-Serial-JTAG is on the S3, C3, C6, H2, P4...: the class, not the part

# Neither pyserial nor esptool names USB-UART bridges, and the product strings do not either (a CH343 says
# "USB Single Serial", a CH340 "USB Serial"), so `yamflash ports` names the bridges found on ESP32 dev kits and
# probes itself. Naming only: any USB serial port is a candidate for --port auto, named here or not.
BRIDGES: dict[tuple[int, int], str] = {
    (0x10C4, 0xEA60): "Silicon Labs CP210x (CP2102/CP2102N/CP2104) UART bridge",
    (0x10C4, 0xEA70): "Silicon Labs CP2105 dual UART bridge",
    (0x10C4, 0xEA71): "Silicon Labs CP2108 quad UART bridge",
    (0x1A86, 0x7523): "WCH CH340 UART bridge",
    (0x1A86, 0x5523): "WCH CH341 UART bridge",
    (0x1A86, 0x55D2): "WCH CH342 dual UART bridge",
    (0x1A86, 0x55D3): "WCH CH343 UART bridge",
    (0x1A86, 0x55D4): "WCH CH9102 UART bridge",
    (0x0403, 0x6001): "FTDI FT232R UART bridge",
    (0x0403, 0x6010): "FTDI FT2232H (ESP-Prog: interface 0 is JTAG, interface 1 the UART)",
    (0x0403, 0x6011): "FTDI FT4232H quad UART bridge",
    (0x0403, 0x6014): "FTDI FT232H UART bridge",
    (0x0403, 0x6015): "FTDI FT-X (FT230X/FT231X) UART bridge",
}
VENDORS = {0x10C4: "Silicon Labs", 0x1A86: "WCH", 0x0403: "FTDI", ESPRESSIF_VID: "Espressif"}


@dataclass(frozen=True)
class PortInfo:
    """One serial port as `yamflash ports` shows it."""

    device: str
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    description: str = ""
    manufacturer: str | None = None
    product: str | None = None
    location: str | None = None

    @property
    def usb(self) -> str | None:
        return f"{self.vid:04X}:{self.pid:04X}" if self.vid is not None and self.pid is not None else None

    @property
    def interface(self) -> int | None:
        """The USB interface number of a multi-port device (pyserial's location ends in ':<config>.<if>')."""
        m = re.search(r":[^:]*\.(\d+)$", self.location or "")
        return int(m.group(1)) if m else None

    @property
    def chip(self) -> str | None:
        """The chip when the USB IDs say it without a reset (only the chip's own USB does); None otherwise."""
        return NATIVE_CHIP if (self.vid, self.pid) == NATIVE_USB else None

    @property
    def bridge(self) -> str:
        """What carries the serial line: the chip's own USB, a named UART bridge, or what the OS calls it."""
        if (self.vid, self.pid) == NATIVE_USB:
            return "native USB-Serial-JTAG"
        if self.vid is None:
            return "not USB (no VID:PID)"
        named = BRIDGES.get((self.vid, self.pid if self.pid is not None else -1))
        if named:
            return named
        vendor = VENDORS.get(self.vid)
        what = self.product or (self.description if self.description not in ("", "n/a") else None)
        if self.vid == ESPRESSIF_VID:
            return f"Espressif USB device ({what or 'not USB-Serial-JTAG'})"
        return " ".join(x for x in (vendor, what or "USB serial device") if x)

    @property
    def kind(self) -> str:
        return self.chip + " (native USB)" if self.chip else self.bridge

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "vid": f"{self.vid:04X}" if self.vid is not None else None,
                "pid": f"{self.pid:04X}" if self.pid is not None else None, "usb": self.usb,
                "interface": self.interface, "chip": self.chip, "bridge": self.bridge, "auto": self.vid is not None}


def info(p: Any) -> PortInfo:
    """A PortInfo from a pyserial ListPortInfo (or anything with its attributes)."""
    desc = getattr(p, "description", "") or ""
    return PortInfo(str(p.device), getattr(p, "vid", None), getattr(p, "pid", None),
                    getattr(p, "serial_number", None), "" if desc == "n/a" else desc,
                    getattr(p, "manufacturer", None), getattr(p, "product", None), getattr(p, "location", None))


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


def candidate(p: Any) -> Candidate | None:
    """The port as a --port auto candidate: any USB serial port (a board's own USB or any UART bridge)."""
    i = p if isinstance(p, PortInfo) else info(p)
    if i.vid is None or i.pid is None:
        return None
    return Candidate(i.device, i.vid, i.pid, i.kind, i.serial_number, i.description)


def _esptool_order(p: Any) -> int:
    """esptool's order for a list handed in (tests): Espressif's own USB first, the rest as listed."""
    return 0 if getattr(p, "vid", None) == ESPRESSIF_VID else 1


def _list_ports() -> list[Any]:
    try:
        from esp_pylib.serial_ports import get_port_list  # esptool 5's discovery
    except ImportError:
        from serial.tools import list_ports

        return sorted(list_ports.comports(), key=_esptool_order)
    return list(get_port_list())


def list_all(ports: Sequence[Any] | None = None) -> list[PortInfo]:
    """Every serial port esptool would scan, in esptool's order."""
    found = _list_ports() if ports is None else sorted(ports, key=_esptool_order)
    return [info(p) for p in found]


def candidates(ports: Sequence[Any] | None = None) -> list[Candidate]:
    """The USB serial ports among them (a dev kit's native USB or UART bridge), in esptool's order."""
    return [c for c in (candidate(p) for p in list_all(ports)) if c is not None]


def resolve(port: str, ask: Callable[[list[Candidate]], Candidate] | None = None,
            ports: Sequence[Any] | None = None) -> Candidate | str:
    """``auto`` -> the one USB serial port present (asking when several); any other name is returned as given."""
    if port != "auto":
        return port
    found = candidates(ports)
    if not found:
        raise UserError("no ESP32-S3 board found: no USB serial port is present (`yamflash ports` lists the ports "
                        "esptool sees); plug the board in with a data cable, or pass --port /dev/ttyACM0 (or "
                        "--port sim).")
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


def table(found: list[PortInfo]) -> str:
    """`yamflash ports` as text: one row per port, the columns a person picks a port by."""
    rows = [("PORT", "CHIP", "USB", "SERIAL", "CONNECTION", "DESCRIPTION")]
    for p in found:
        bridge = p.bridge + (f", interface {p.interface}" if p.interface is not None else "")
        chip = p.chip or ("?" if p.vid is not None else "-")  # ?: a chip is there, behind a bridge
        rows.append((p.device, chip, p.usb or "-", p.serial_number or "-", bridge, p.description or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows)


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


def follow(device: str, listing: Callable[[], list[Any]] | None = None) -> Any:
    """A Candidate for a USB serial device given by path, so that a board coming back under another name
    (same VID:PID and serial number) is found again; None for a by-id link (the link itself follows the
    board), a pty or anything that is not a USB port."""
    import os

    if Path(device).is_symlink():
        return None
    try:
        if listing is None:
            from serial.tools import list_ports

            listing = list_ports.comports
        found = list(listing())
    except Exception:  # no listing on this platform: reopen by path
        return None
    real = os.path.realpath(device)
    for p in found:
        if p.vid is not None and os.path.realpath(p.device) == real:
            return candidate(p)
    return None
