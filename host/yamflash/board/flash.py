"""`yamflash flash`: write a build to a board with esptool's Python API, or to the virtual board's flash file.

Everything that can be checked without the board is checked first (images present, table valid, model
fits its partition, a virtual-board build never goes to a serial port), so a bad build never half-flashes
a board. What is skipped is decided by the flash's content, never by a version string: on a board each
region's MD5 as the flasher stub computes it over the flash (``ESPLoader.flash_md5sum``, the check esptool's
own verification uses), on the virtual board the bytes of its flash file. A region whose content is already
there is not written; a board that already holds every region is only reset. The esptool-facing part takes
the ``esptool.cmds`` module as a parameter so tests can hand it a fake; tests/test_flash_board.py runs it
against a mock ESP32-S3 ROM bootloader (esptool's real protocol).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..manifest import atomic_write, read_json
from ..target import partitions

SECTOR = 0x1000
SIM_FLASH_SIZE = 16 << 20
ORDER = ("bootloader", "partition-table", "app", "model")
DEFAULT_CONSOLE_BAUD = 115200  # ESP-IDF's console default; USB-Serial-JTAG ignores the rate altogether


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
        return self.with_regions([r for r in self.regions if r.name in names])

    def with_regions(self, regions: list[Region]) -> Plan:
        """The same build with only ``regions`` to write."""
        return Plan(regions, self.table, self.chip, self.flash_size, self.fw, self.model_sha256, self.source,
                    self.extra)

    @property
    def profile(self) -> str | None:
        p = self.extra.get("profile")
        return str(p) if p else None

    @property
    def is_virtual(self) -> bool:
        """A `build --board sim` build: its "app" is a descriptor for the virtual board, not an ESP32 image."""
        if self.profile == "sim":
            return True
        app = next((r for r in self.regions if r.name == "app"), None)
        return app is not None and app.data[:1] == b"{" and b'"yamflash-virtual-app"' in app.data[:4096]

    @property
    def console_baud(self) -> int:
        """The firmware's console baud as the build recorded it (monitor and the HIL suite talk at this rate)."""
        return console_baud_of(self.extra)


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


def console_baud_of(doc: dict[str, Any] | None) -> int:
    """``console_baud`` of a flash manifest; ESP-IDF's 115200 when the build did not record one."""
    try:
        baud = int((doc or {}).get("console_baud") or DEFAULT_CONSOLE_BAUD)
    except (TypeError, ValueError):
        return DEFAULT_CONSOLE_BAUD
    return baud if baud > 0 else DEFAULT_CONSOLE_BAUD


def console_baud(manifest: str | Path) -> int:
    """The console baud recorded in a build's flash.json; 115200 when there is no (readable) build."""
    import json

    try:
        doc = json.loads(Path(manifest).read_text())
    except (OSError, ValueError):
        return DEFAULT_CONSOLE_BAUD
    return console_baud_of(doc if isinstance(doc, dict) else None)


def check_flash_size(plan: Plan, flash_bytes: int, where: str = "the board") -> None:
    """The table must fit the flash, and the build must not tell the chip it has more flash than it has
    (the bootloader header carries the build's size; ESP-IDF's app refuses to start when it exceeds the chip's)."""
    end = max(p.end for p in plan.table)
    if end > flash_bytes:
        raise UserError(f"the partition table needs {end:,} bytes of flash but {where} has {flash_bytes:,} "
                        f"({flash_bytes >> 20} MB); build for this board's profile (yamflash build --board ...) "
                        "or use a board with more flash.")
    if plan.flash_size and plan.flash_size > flash_bytes:
        raise UserError(f"this build is for {plan.flash_size >> 20} MB of flash but {where} has "
                        f"{flash_bytes >> 20} MB, and the app would refuse to start; run `yamflash gen --flash-size "
                        f"{flash_bytes >> 20}MB` (or the board's profile) and `yamflash build` again.")


def refuse_virtual_on_port(plan: Plan, port: str) -> None:
    """The virtual board's images are not ESP32 images: never write them to a serial port (even with --force)."""
    if plan.is_virtual:
        raise UserError(f"{plan.source or 'this build'} is the virtual board's build (profile sim), not firmware "
                        f"for a chip; it cannot go to {port}. Build for the board: `yamflash gen --board "
                        "esp32s3-n16r8 && yamflash build`, or flash the virtual board with --port sim.")


def esptool_image(data: bytes) -> bytes:
    """The bytes esptool writes for ``data`` when every flash setting is "keep": padded with 0xFF to 4 bytes."""
    return data + b"\xff" * (-len(data) % 4)


def region_md5(r: Region) -> str:
    return hashlib.md5(esptool_image(r.data)).hexdigest()


# ---- the virtual board -------------------------------------------------------------------------------
def sim_differs(plan: Plan, flash_file: str | Path) -> list[Region]:
    """The regions whose bytes the virtual board's flash file does not hold (all of them when it has none)."""
    try:
        with open(flash_file, "rb") as f:
            differ = []
            for r in plan.regions:
                f.seek(r.offset)
                if f.read(len(r.data)) != r.data:
                    differ.append(r)
            return differ
    except OSError:
        return list(plan.regions)


def flash_sim(plan: Plan, flash_file: str | Path) -> list[Region]:
    """Write the regions into the virtual board's flash file, sector-erased like esptool (atomic replace)."""
    check_flash_size(plan, SIM_FLASH_SIZE, "the virtual board")
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
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _esptool_error(exc: BaseException, port: str) -> UserError:
    text = str(exc)
    # By errno, not by esptool's wording: it says "the port is busy or doesn't exist" for both (issue 13, 6).
    if re.search(r"No such file|FileNotFoundError|\[Errno (2|6|19)\]", text, re.I):
        return UserError(f"cannot open {port}: the board is not there; check the cable or use --port auto.")
    if re.search(r"Permission denied|\[Errno 13\]", text, re.I):
        return UserError(f"no permission to open {port}; add yourself to the 'dialout' (or 'uucp') group and log "
                         "in again.")
    if re.search(r"Device or resource busy|exclusively lock|Errno 16|Errno 11\b|Resource temporarily unavailable",
                 text, re.I):
        return UserError(f"{port} is busy: another program (a serial monitor, an IDE) has it open; close it and "
                         "run the command again.")
    if re.search(r"could not open", text, re.I):
        return UserError(f"cannot open {port}: {_first_line(exc)}")
    if re.search(r"Failed to connect|No serial data received|Wrong boot mode", text, re.I):
        return UserError(f"no bootloader answered on {port}; hold BOOT, press and release RESET, release BOOT, "
                         "then run the command again.")
    return UserError(f"esptool failed on {port}: {_first_line(exc)}")


def _lost_port(exc: BaseException, port: str, r: Region) -> UserError:
    return UserError(f"lost {port} while writing {r.name} at 0x{r.offset:x} ({_first_line(exc)}); the board's flash "
                     "is incomplete: reconnect the board and run `yamflash flash` again (it rewrites what differs).")


def flash_size_bytes(text: str | None) -> int | None:
    if not text:
        return None
    m = re.fullmatch(r"(\d+)(K|M)B", text.strip(), re.I)
    if not m:
        return None
    return int(m.group(1)) << (10 if m.group(2).upper() == "K" else 20)


def chip_key(name: str) -> str:
    """esptool's CHIP_NAME ("ESP32-S3") in the manifests' spelling ("esp32s3")."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def chip_name(key: str) -> str:
    """The manifests' "esp32s3" as esptool names the chip ("ESP32-S3")."""
    from esptool.targets import CHIP_DEFS

    cls = CHIP_DEFS.get(chip_key(key))
    return str(cls.CHIP_NAME) if cls is not None else key


Progress = Callable[[Region, int, int], None]


class _EsptoolOutput:
    """esptool's output during a flash: progress to ``progress``, warnings and errors to ``say``, the rest kept.

    Installed with esptool's documented ``log.set_logger`` (a TemplateLogger), so yamflash shows its own
    one-line-per-step account instead of esptool's stage log; the last lines are kept for diagnosis.
    """

    def __init__(self, say: Callable[[str], None], progress: Progress | None):
        from esptool.logger import TemplateLogger

        outer = self
        self.say, self.progress = say, progress
        self.region: Region | None = None
        self.lines: list[str] = []

        class Sink(TemplateLogger):
            def print(self, *args: Any, **kwargs: Any) -> None:
                outer.keep(" ".join(str(a) for a in args))

            def note(self, message: str) -> None:
                outer.keep(f"note: {message}")

            def warning(self, message: str) -> None:
                outer.warn(str(message))

            def error(self, message: str) -> None:
                outer.keep(f"error: {message}")

            def stage(self, finish: bool = False) -> None:
                pass

            def progress_bar(self, cur_iter: int, total_iters: int, prefix: str = "", suffix: str = "",
                             bar_length: int = 30) -> None:
                if outer.progress is not None and outer.region is not None and total_iters > 0:
                    outer.progress(outer.region, cur_iter, total_iters)

            def set_verbosity(self, verbosity: str) -> None:
                pass

        self.sink = Sink()

    def keep(self, line: str) -> None:
        self.lines = (self.lines + [line.strip()])[-40:]

    def warn(self, message: str) -> None:
        text = " ".join(re.sub(r"^\s*WARNING:\s*", "", message).split())
        if text:
            self.keep(f"warning: {text}")
            self.say(f"esptool: warning: {text}")

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Our sink as esptool's logger; stderr caught too, since a few esptool warnings are bound at import
        time to its default logger (e.g. "Chip was NOT reset" in esptool/reset.py) and would bypass the sink."""
        from esptool.logger import log

        try:  # esptool >= 5.6 keeps its logger in esp-pylib's singleton: put the previous one back afterwards
            from esp_pylib.logger import EspLog

            previous: Any = EspLog.instance
        except ImportError:
            EspLog, previous = None, None  # type: ignore[assignment,misc]
        log.set_logger(self.sink)
        stderr = _Lines(self.warn)
        try:
            with contextlib.redirect_stderr(stderr):
                yield
        finally:
            stderr.close()
            if EspLog is not None:
                EspLog.instance = previous


class _Lines(io.TextIOBase):
    """A text stream that hands each complete line to ``emit``."""

    def __init__(self, emit: Callable[[str], None]):
        super().__init__()
        self.emit, self.buf = emit, ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self.buf += s
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            self.emit(line)
        return len(s)

    def close(self) -> None:
        if self.buf:
            self.emit(self.buf)
            self.buf = ""
        super().close()


def flash_esptool(plan: Plan, port: str, baud: int = 460800, cmds: Any = None,
                  say: Callable[[str], None] = print, force: bool = False,
                  progress: Progress | None = None) -> list[Region]:
    """Connect, check chip and flash size, write what the flash does not hold (verified, one retry), hard-reset.

    Returns the regions written: none when the board's flash already holds every region (it is still reset
    into its app, since connecting stopped it in the bootloader).
    """
    if cmds is None:
        from esptool import cmds as esptool_cmds

        cmds = esptool_cmds
    from esptool.util import FatalError

    out = _EsptoolOutput(say, progress)
    with out.installed():
        try:
            esp = cmds.detect_chip(port, baud=baud, connect_mode="default-reset")
        except Exception as exc:  # serial errors surface as several types (SerialException, OSError, FatalError)
            raise _esptool_error(exc, port) from None
        with contextlib.closing(_Closer(esp)):
            name = str(getattr(esp, "CHIP_NAME", "?"))
            if chip_key(name) != chip_key(plan.chip):
                raise UserError(f"the board on {port} is an {name}, but this build is for an {chip_name(plan.chip)} "
                                f"({plan.source}); nothing was written. Check --port, or build for this chip.")
            try:
                esp = cmds.run_stub(esp)  # the stub object talks over the same port the closer closes
                cmds.attach_flash(esp)
                size = flash_size_bytes(cmds.detect_flash_size(esp))
            except Exception as exc:
                raise _esptool_error(exc, port) from None
            if size is not None:
                check_flash_size(plan, size, f"the board on {port}")
            else:
                say("warning: could not detect the flash size; trusting the build's profile")
            todo = list(plan.regions)
            if not force:
                todo = [r for r in plan.regions if _board_md5(esp, r, port) != region_md5(r)]
                for r in others(plan.regions, todo):
                    say(region_line(r, "already in flash (MD5 matches)"))
            for r in todo:
                say(region_line(r, "writing"))
                out.region = r
                _write_region(cmds, esp, r, port, say, FatalError)
                out.region = None
            try:
                cmds.reset_chip(esp, "hard-reset")
            except Exception as exc:
                raise _esptool_error(exc, port) from None
    return todo


def region_line(r: Region, what: str) -> str:
    return f"  {r.name:<16} {len(r.data):>10,} bytes at 0x{r.offset:06x}: {what}"


def others(regions: list[Region], picked: list[Region]) -> list[Region]:
    ids = {id(r) for r in picked}
    return [r for r in regions if id(r) not in ids]


def _board_md5(esp: Any, r: Region, port: str) -> str:
    """MD5 of the flash where ``r`` goes, over the length esptool would write (the stub hashes the flash itself)."""
    try:
        return str(esp.flash_md5sum(r.offset, len(esptool_image(r.data))))
    except Exception as exc:
        raise _esptool_error(exc, port) from None


def _write_region(cmds: Any, esp: Any, r: Region, port: str, say: Callable[[str], None], fatal: type) -> None:
    """One region through esptool's write_flash (compressed, MD5-verified by esptool), retried once on a bad verify."""
    for attempt in (1, 2):
        try:
            cmds.write_flash(esp, [(r.offset, r.data)], flash_freq="keep", flash_mode="keep", flash_size="keep",
                             compress=True)
            return
        except fatal as exc:
            text = str(exc)
            if "MD5" not in text and "verif" not in text.lower() and "empty" not in text:
                raise _lost_port(exc, port, r) if _is_link_loss(text) else _esptool_error(exc, port) from None
            if attempt == 2:
                raise UserError(f"flash verification of {r.name} failed twice (the data read back differs); try "
                                "another USB cable or port, a lower --baud, or erase the flash with "
                                "`esptool erase-flash`.") from None
            say(f"verification of {r.name} failed; writing it once more")
        except Exception as exc:  # pyserial's SerialException / OSError: the port went away mid-write
            raise _lost_port(exc, port, r) from None


def _is_link_loss(text: str) -> bool:
    return bool(re.search(r"Timed out|timeout|Input/output error|Errno 5\b|disconnect|device reports readiness",
                          text, re.I))


class _Closer:
    """Close esptool's serial port whatever happens (ESPLoader is a context manager on its port)."""

    def __init__(self, esp: Any):
        self.esp = esp

    def close(self) -> None:
        port = getattr(self.esp, "_port", None)
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()


def progress_printer(stream: Any = None, steps: int = 4) -> Progress:
    """Progress of each region: a line rewritten in place on a terminal, one line per quarter otherwise."""
    stream = stream or sys.stdout
    tty = bool(getattr(stream, "isatty", lambda: False)())
    shown: dict[str, int] = {}

    def show(r: Region, cur: int, total: int) -> None:
        pct = min(100, cur * 100 // total)
        if tty:
            bar = "#" * (pct * 30 // 100)
            stream.write(f"\r  {r.name:<16} [{bar:<30}] {pct:3d} %" + ("\n" if pct == 100 else ""))
            stream.flush()
            return
        step = pct * steps // 100
        if shown.get(r.name, -1) < step:
            shown[r.name] = step
            stream.write(f"  {r.name:<16} {pct:3d} % of {len(r.data):,} bytes\n")
            stream.flush()

    return show
