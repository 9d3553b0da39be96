"""The options of every command that talks to a board, spelt as esptool and idf.py spell them.

``-p/--port`` is the device (a serial port, ``auto`` or ``sim``), default ``$ESPPORT``; ``--board`` is always the
build profile (esp32s3-n16r8, esp32s3-n8r2, sim), never a port. ``-b/--baud`` is the rate of what the command
does: esptool's flashing rate for ``flash`` (default ``$ESPBAUD``, as idf.py), the console's rate for ``monitor``,
``validate`` and ``bench`` (default ``$MONITORBAUD`` or ``$IDF_MONITOR_BAUD``, as idf.py monitor, else the rate
the build recorded in flash.json). The environment is read here, not through click's ``envvar``, so that a
``--board sim`` build goes to the virtual board even when ESPPORT names a serial port.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..errors import UserError
from ..target import profiles

F = TypeVar("F", bound=Callable[..., Any])

FLASH_BAUD = 460800  # esptool's usual fast rate; the ROM loader starts at 115200 and esptool switches
PORT_HELP = ("Device: a serial port (/dev/ttyACM0, COM3), auto (the one USB serial port present; "
             "`yamflash ports` lists them) or sim (the virtual board). Default: $ESPPORT, else auto "
             "(sim with --board sim).")


def port_option(f: F) -> F:
    return click.option("-p", "--port", default=None, metavar="PORT", help=PORT_HELP)(f)


def flash_baud_option(f: F) -> F:
    return click.option("-b", "--baud", type=click.IntRange(min=1), default=None, metavar="BAUD",
                        help=f"esptool's baud rate while flashing. Default: $ESPBAUD, else {FLASH_BAUD}.")(f)


def console_baud_option(f: F) -> F:
    return click.option("-b", "--baud", type=click.IntRange(min=1), default=None, metavar="BAUD",
                        help="Console baud rate. Default: $MONITORBAUD (or $IDF_MONITOR_BAUD), else the "
                             "console_baud the build recorded in its flash.json, else 115200.")(f)


def _env_int(*names: str) -> int | None:
    for name in names:
        raw = os.environ.get(name, "").strip()
        if raw:
            if not raw.isdigit() or int(raw) <= 0:
                raise UserError(f"{name}={raw!r} is not a baud rate; set it to a number such as 115200 "
                                f"(or unset it).")
            return int(raw)
    return None


def pick_port(port: str | None, profile: str | None = None) -> str:
    """--port as given, else the virtual board for a sim build, else $ESPPORT, else auto."""
    if port:
        return port
    if profile == "sim":  # the virtual board's images run nowhere else, whatever ESPPORT names
        return "sim"
    return os.environ.get("ESPPORT", "").strip() or "auto"


def flash_baud(baud: int | None) -> int:
    return baud or _env_int("ESPBAUD") or FLASH_BAUD


def console_baud(baud: int | None, manifest: str | None) -> int:
    """-b, else MONITORBAUD/IDF_MONITOR_BAUD, else the build's recorded console rate (as idf.py monitor does)."""
    if baud:
        return baud
    env = _env_int("MONITORBAUD", "IDF_MONITOR_BAUD")
    if env:
        return env
    from .flash import DEFAULT_CONSOLE_BAUD
    from .flash import console_baud as recorded

    return recorded(manifest) if manifest else DEFAULT_CONSOLE_BAUD


def legacy_board(command: str, board: str | None, port: str | None) -> tuple[str | None, str | None]:
    """validate and bench took the device as ``--board PORT|sim`` up to yamflash 0.1; --board is the build profile
    now. A --board that names no profile is read as the port for one more release, with a warning."""
    if board is None or board in profiles.PROFILES:
        return board, port
    if port:
        raise UserError(f"--board {board} is not a build profile ({', '.join(profiles.PROFILES)}); the device "
                        f"goes to --port, and --port {port} is given already.")
    click.echo(f"yamflash: warning: `{command} --board {board}` is deprecated: the device is -p/--port now and "
               f"--board names the build profile; reading it as --port {board} (the old spelling goes in the next "
               f"release).", err=True)
    return None, board


def profile_for(port: str, board: str | None) -> str:
    """The build whose flash.json describes what runs on ``port``: the virtual board's on sim."""
    return "sim" if port == "sim" else (board or "esp32s3-n16r8")
