"""`yamflash flash`: write a build to a board with esptool's Python API, or to the virtual board's flash file.

Everything that can be checked without the board is checked first (images present, table valid, model
fits its partition), so a bad build never half-flashes a board. The esptool-facing part takes the
``esptool.cmds`` module as a parameter so tests can hand it a fake and assert the calls and offsets.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import partitions
from .errors import UserError
from .manifest import atomic_write, read_json

SECTOR = 0x1000
SIM_FLASH_SIZE = 16 << 20
ORDER = ("bootloader", "partition-table", "app", "model")


@dataclass
class Region:
    name: str
    offset: int
    data: bytes
    path: str = ""


@dataclass
class Plan:
    """What to write where, plus what the board should report afterwards (for the skip check)."""

    regions: list[Region]
    table: list[partitions.Partition]
    chip: str = "esp32s3"
    flash_size: int | None = None
    fw: str | None = None
    model_sha256: str | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def only(self, names: tuple[str, ...]) -> Plan:
        return Plan([r for r in self.regions if r.name in names], self.table, self.chip, self.flash_size, self.fw,
                    self.model_sha256, self.source, self.extra)


def _int(v: Any) -> int:
    return v if isinstance(v, int) else int(str(v), 0)


def load_plan(path: str | Path) -> Plan:
    """Read the build's flash manifest (flash.json) and its images; UserError on anything inconsistent."""
    path = Path(path)
    doc = read_json(path, f"{path} does not exist; run `yamflash build` (or `make flash`) first.",
                    f"{path} is not a readable flash manifest ({{exc}}); run `yamflash build` again.")
    files = doc.get("files")
    if isinstance(files, dict):
        files = [{"name": k, **(v if isinstance(v, dict) else {"file": v})} for k, v in files.items()]
    if not isinstance(files, list) or not files:
        raise UserError(f"{path} lists no files to flash; run `yamflash build` again.")
    regions = []
    for f in files:
        try:
            name, off, rel = str(f["name"]), _int(f["offset"]), str(f.get("file") or f["path"])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}: entry {f!r} needs name, offset and file; run `yamflash build` again.") from None
        img = (path.parent / rel) if not Path(rel).is_absolute() else Path(rel)
        if not img.is_file():
            raise UserError(f"{img} (named in {path}) is missing; run `yamflash build` again.")
        regions.append(Region(name, off, img.read_bytes(), str(img)))
    regions.sort(key=lambda r: r.offset)
    for a, b in zip(regions, regions[1:], strict=False):
        if a.offset + len(a.data) > b.offset:
            raise UserError(f"{a.name} ({len(a.data):,} bytes at 0x{a.offset:x}) overlaps {b.name} at "
                            f"0x{b.offset:x}; run `yamflash build` again.")
    table_region = next((r for r in regions if r.name == "partition-table"), None)
    if table_region is None:
        raise UserError(f"{path} has no partition-table image; run `yamflash build` again.")
    try:
        table = partitions.from_binary(table_region.data)
    except ValueError as exc:
        raise UserError(f"{table_region.path} is not a valid partition table ({exc}); run `yamflash build`.") from None
    size = doc.get("flash_size")
    plan = Plan(regions, table, str(doc.get("chip", "esp32s3")),
                partitions.parse_size(size) if size else None,
                doc.get("fw") or doc.get("firmware_version"), None, str(path), doc)
    _check_partitions(plan)
    return plan


def _check_partitions(plan: Plan) -> None:
    """Each image must lie inside a partition of the table it ships with (bootloader and table excepted)."""
    for r in plan.regions:
        if r.name in ("bootloader", "partition-table"):
            continue
        part = next((p for p in plan.table if p.offset == r.offset), None)
        if part is None:
            raise UserError(f"{r.name} goes to 0x{r.offset:x}, where the partition table has no partition; "
                            "run `yamflash gen` and `yamflash build` again.")
        if len(r.data) > part.size:
            what = "model" if r.name == "model" else r.name
            raise UserError(f"the {what} image is {len(r.data):,} bytes but its partition '{part.name}' holds "
                            f"{part.size:,}; run `yamflash gen` again (it sizes the partition from the model) "
                            "or use a smaller model.")
        if r.name == "model" and r.data[:8] == partitions.MODEL_IMAGE_MAGIC:
            try:
                _, head = partitions.read_model_image(r.data)
            except ValueError as exc:
                raise UserError(f"the model image {r.path} is corrupt ({exc}); run `yamflash build` again.") from None
            plan.model_sha256 = str(head["sha256"])
    model_sha = plan.extra.get("model_sha256")
    if plan.model_sha256 is None and isinstance(model_sha, str):
        plan.model_sha256 = model_sha


def check_flash_size(plan: Plan, flash_bytes: int) -> None:
    end = max(p.end for p in plan.table)
    if end > flash_bytes:
        raise UserError(f"the partition table needs {end:,} bytes of flash but the board has {flash_bytes:,} "
                        f"({flash_bytes >> 20} MB); build for this board's profile (yamflash build --board ...) "
                        "or use a board with more flash.")


def up_to_date(plan: Plan, info: dict[str, Any] | None) -> bool:
    """True when the board already runs this firmware and model (``info`` is its `info` reply)."""
    if not info or not plan.model_sha256:
        return False
    same_model = info.get("model_sha256") == plan.model_sha256
    return same_model and (plan.fw is None or info.get("fw") == plan.fw)


# ---- the virtual board -------------------------------------------------------------------------------
def flash_sim(plan: Plan, flash_file: str | Path) -> list[Region]:
    """Write the regions into the virtual board's flash file, sector-erased like esptool (atomic replace)."""
    check_flash_size(plan, SIM_FLASH_SIZE)
    flash_file = Path(flash_file)
    img = bytearray(flash_file.read_bytes()) if flash_file.is_file() else bytearray(b"\xff" * SIM_FLASH_SIZE)
    if len(img) != SIM_FLASH_SIZE:
        img = (img + b"\xff" * SIM_FLASH_SIZE)[:SIM_FLASH_SIZE]
    for r in plan.regions:
        end = r.offset + len(r.data)
        erase_end = -(-end // SECTOR) * SECTOR
        img[r.offset : erase_end] = b"\xff" * (erase_end - r.offset)
        img[r.offset : end] = r.data
    atomic_write(flash_file, bytes(img))
    return plan.regions


# ---- a real board through esptool ----------------------------------------------------------------------
WRONG_CHIP_HINT = {"ESP32": "an ESP32", "ESP32-S2": "an ESP32-S2", "ESP32-C3": "an ESP32-C3"}


def _esptool_error(exc: BaseException, port: str) -> UserError:
    text = str(exc)
    if re.search(r"busy|exclusively lock|Errno 16|Resource temporarily unavailable", text, re.I):
        return UserError(f"{port} is busy: another program (a serial monitor, an IDE) has it open; close it and "
                         "run the command again.")
    if re.search(r"No such file|could not open port|FileNotFoundError|Errno 2\b", text, re.I):
        return UserError(f"cannot open {port}: the board is not there; check the cable or use --port auto.")
    if re.search(r"Failed to connect|No serial data received|Wrong boot mode", text, re.I):
        return UserError(f"no bootloader answered on {port}; hold BOOT, press and release RESET, release BOOT, "
                         "then run the command again.")
    return UserError(f"esptool failed on {port}: {text.splitlines()[0] if text else type(exc).__name__}")


def flash_size_bytes(text: str | None) -> int | None:
    if not text:
        return None
    m = re.fullmatch(r"(\d+)(K|M)B", text.strip(), re.I)
    if not m:
        return None
    return int(m.group(1)) << (10 if m.group(2).upper() == "K" else 20)


def flash_esptool(plan: Plan, port: str, baud: int = 460800, cmds: Any = None,
                  say: Callable[[str], None] = print) -> None:
    """Connect, check chip and flash size, write with verification (one retry), hard-reset into the app."""
    if cmds is None:
        from esptool import cmds as esptool_cmds

        cmds = esptool_cmds
    from esptool.util import FatalError

    try:
        esp = cmds.detect_chip(port, baud=baud, connect_mode="default-reset")
    except (FatalError, OSError, Exception) as exc:  # serial errors surface as several types
        raise _esptool_error(exc, port) from None
    with contextlib.closing(_Closer(esp)):
        name = str(getattr(esp, "CHIP_NAME", "?"))
        if name != "ESP32-S3":
            raise UserError(f"the board on {port} is {WRONG_CHIP_HINT.get(name, name)}, not an ESP32-S3; this "
                            "firmware needs an ESP32-S3 (check the board, or the --port).")
        try:
            esp = cmds.run_stub(esp)
            cmds.attach_flash(esp)
            size = flash_size_bytes(cmds.detect_flash_size(esp))
        except FatalError as exc:
            raise _esptool_error(exc, port) from None
        if size is not None:
            check_flash_size(plan, size)
        else:
            say("warning: could not detect the flash size; trusting the build's profile")
        addr_data = [(r.offset, r.data) for r in plan.regions]
        for attempt in (1, 2):
            try:
                cmds.write_flash(esp, addr_data, flash_size="keep", compress=True)
                break
            except FatalError as exc:
                if "MD5" not in str(exc) and "verif" not in str(exc).lower():
                    raise _esptool_error(exc, port) from None
                if attempt == 2:
                    raise UserError("flash verification failed twice (the data read back differs); try another "
                                    "USB cable or port, a lower --baud, or erase the flash with "
                                    "`esptool erase-flash`.") from None
                say("verification failed; writing once more")
        cmds.reset_chip(esp, "hard-reset")


class _Closer:
    """Close esptool's serial port whatever happens (ESPLoader is a context manager on its port)."""

    def __init__(self, esp: Any):
        self.esp = esp

    def close(self) -> None:
        port = getattr(self.esp, "_port", None)
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()


def board_info(port: Any, timeout: float = 3.0) -> dict[str, Any] | None:
    """Ask a running board for `info`; None when nothing answers (other firmware, bootloader, blank)."""
    from .board import Board, BoardError

    b = Board(port, name="board")
    try:
        return b.command("info", timeout=timeout)
    except BoardError:
        return None
    finally:
        b.close()


# ---- what the CLI runs ----------------------------------------------------------------------------------
def flash_sim_cli(plan: Plan, flash_file: str | Path, force: bool, say: Callable[[str], None]) -> None:
    """Flash the virtual board's file; skip when its flash already boots this firmware and model."""
    from .sim.boot import BootError, boot
    from .sim.process import find_running

    if not force:
        try:
            img = boot(flash_file)
            if up_to_date(plan, {"fw": img.fw, "model_sha256": img.model_sha256}):
                say(f"virtual board already has firmware {img.fw} and model {img.model_sha256[:12]}; "
                    "nothing to do (--force flashes anyway)")
                return
        except BootError:
            pass
    for r in flash_sim(plan, flash_file):
        say(f"wrote {r.name:<16} {len(r.data):>10,} bytes at 0x{r.offset:06x}")
    say(f"virtual board flash: {flash_file}")
    pty = find_running(flash_file)
    if pty:  # a running virtual board reboots into the new flash, as a real one does after esptool
        from .board import Board
        from .ports import open_serial

        b = Board(open_serial(pty), name="sim")
        try:
            hello = b.reset(timeout=60)
            say(f"virtual board on {pty} rebooted: model {str(hello.get('model_sha256'))[:12]}")
        finally:
            b.close()


def flash_board_cli(plan: Plan, port: str, baud: int, force: bool, say: Callable[[str], None]) -> None:
    """Find the board, skip if up to date, flash with esptool, wait for the native USB port to return."""
    from . import ports

    target = ports.resolve(port, ask=ports.ask_click)
    device = target.device if isinstance(target, ports.Candidate) else target
    if not force:
        ser = ports.open_serial(device)
        info = board_info(ser)
        if up_to_date(plan, info):
            assert info is not None
            say(f"{device} already runs firmware {info.get('fw')} with model {str(info.get('model_sha256'))[:12]}; "
                "nothing to do (--force flashes anyway)")
            return
    say(f"flashing {', '.join(r.name for r in plan.regions)} to {device}")
    flash_esptool(plan, device, baud, say=say)
    if isinstance(target, ports.Candidate) and target.native_usb:
        say("waiting for the board's USB port to come back after reset")
        device = ports.wait_for(target, timeout=15)
    say(f"done; the board runs the new firmware on {device} (yamflash monitor --port {device})")
