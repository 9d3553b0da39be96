"""`yamflash monitor`: the board's log and events, as a live view, JSON lines, or a JSONL record.

It never dies of the serial line: garbage, partial and over-long lines are counted and skipped, and a
USB device that drops (the S3's native port vanishes on every reset) is waited for and re-opened.
The reset it does on connect pulses EN (RTS) with IO0 (DTR) released, the way esptool's hard reset
and esp-idf-monitor do it, so the chip boots the app and never lands in download mode.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from . import wire
from .status import Sink, State

# esp_pylib's custom-reset language (the one esptool's config uses): DTR released (IO0 high), RTS
# asserted (EN low) for 0.2 s, then released; the 0.2 s suits the native USB's re-enumeration too.
DEFAULT_RESET = "D0|R1|W0.2|R0"


def render(st: State) -> Any:
    """The live status of ``st`` as rich renders it (monitor_view.render, without a log stream)."""
    from .view import View
    from .view import render as render_view

    return render_view(st, View(st, lambda text, style: None))




def pump(port: Any, splitter: wire.Splitter, sink: Sink, stop: Callable[[], bool]) -> None:
    """Read until ``stop()`` or until the port fails (the exception propagates for the reconnect loop)."""
    while not stop():
        data = port.read(max(1, int(getattr(port, "in_waiting", 0) or 0)))
        if not data:
            continue
        for raw in splitter.feed(data):
            sink.line(wire.classify(raw))
        sink.state.bad_lines += splitter.overlong
        splitter.overlong = 0


def run(opener: Callable[[], Any], sink: Sink, stop: Callable[[], bool], reset: Callable[[Any], None] | None,
        reconnect_wait: Callable[[], None] | None = None, on_connect: Callable[[Any], None] | None = None,
        on_reconnect: Callable[[Any], None] | None = None, present: Callable[[], bool] | None = None,
        grace: float = 5.0) -> None:
    """Open, reset once, pump; when the device drops, wait for it and open again, until ``stop()``.

    The first open must succeed: a busy, missing or forbidden port is the user's to fix, so its error
    propagates. After a drop, open failures are retried while the device is away; once it is back
    (``present()``) and still fails to open for ``grace`` seconds, someone else has it, and that error
    propagates too.
    UserErrors from the outputs (a full disk under --log) end the run as well: they are not a lost port.
    """
    from ..errors import UserError

    first, failing_since = True, None
    while not stop():
        try:
            port = opener()
        except Exception:
            if first or reconnect_wait is None:
                raise
            now = time.monotonic()
            here = present is not None and present()
            failing_since = (failing_since or now) if here else None
            if failing_since is not None and now - failing_since > grace:
                raise
            reconnect_wait()
            continue
        failing_since = None
        sink.state.connected = True
        splitter = wire.Splitter()
        try:
            if first and reset is not None:
                reset(port)
            if not first:
                sink.line(wire.Line("log", f"[yamflash monitor] reconnected to {getattr(port, 'port', port)}"))
                if on_reconnect:
                    on_reconnect(port)
            first = False
            if on_connect:
                on_connect(port)
            pump(port, splitter, sink, stop)
        except UserError:
            raise
        except Exception as exc:  # SerialException, EIO from a vanished USB device or a stopped virtual board
            if reconnect_wait is None:
                raise
            sink.state.connected = False
            sink.state.reconnects += 1
            sink.line(wire.Line("log", f"[yamflash monitor] port lost ({exc}); waiting for the board"))
            reconnect_wait()
        finally:
            with contextlib.suppress(Exception):
                port.close()
    sink.state.connected = False


def follow(device: str, listing: Callable[[], list[Any]] | None = None) -> Any:
    """A ports.Candidate for a USB serial device given by path, so that a board coming back under another name
    (same VID:PID and serial number) is found again; None for a by-id link (the link itself follows the
    board), a pty or anything that is not a USB port."""
    import os

    from . import ports

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
            return ports.candidate(p)
    return None


def hardware_reset(seq: str) -> Callable[[Any], None]:
    """A reset callable for a real board (esp_pylib's custom-reset language, as esptool's config uses)."""
    from esp_pylib.serial_reset import execute_custom_reset, parse_custom_reset_sequence

    try:
        parse_custom_reset_sequence(seq)
    except ValueError as exc:
        from ..errors import UserError

        raise UserError(f"--reset-seq {seq!r} is not valid ({exc}); example: {DEFAULT_RESET}") from None

    def do(port: Any) -> None:
        with contextlib.suppress(OSError):  # a pty or a bridge without modem lines: nothing to toggle
            execute_custom_reset(port, seq)

    return do


def sim_reset(port: Any) -> None:
    """The virtual board has no EN line: ask it to reboot over the protocol."""
    port.write(wire.encode({"t": "cmd", "id": 0, "cmd": "reset"}))


def open_log(path: str | Path | None) -> IO[str] | None:
    """The --log file, appended to (a JSONL record survives restarts of the monitor); UserError when it cannot be."""
    if not path:
        return None
    from ..errors import UserError
    from ..outputs import check_log, describe

    p = check_log(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        return open(p, "a", buffering=1)
    except OSError as exc:
        raise UserError(describe(exc, p, verb="open", flag="--log")) from None


def _classes(detect: tuple[str, ...], model_json: str) -> list[int]:
    from ..errors import UserError
    from ..manifest import load

    labels = load(model_json).get("labels") or []
    by_name = {lab.casefold(): i for i, lab in reversed(list(enumerate(labels)))}  # any case, as gen --watch
    out = []
    for name in detect:
        if name.isdigit():
            out.append(int(name))
        elif name.strip().casefold() in by_name:
            out.append(by_name[name.strip().casefold()])
        else:
            close = [lab for lab in labels if name.lower() in lab.lower()][:5]
            raise UserError(f"--detect {name!r} is not a label of {model_json}" +
                            (f"; did you mean: {', '.join(close)}?" if close else "."))
    return out


def _labels(model_json: str) -> list[str]:
    """Labels for the --scores view (model.json's), or none: the view then says "class N"."""
    try:
        from ..manifest import load

        return [str(x) for x in load(model_json).get("labels") or []]
    except Exception:  # a monitor without the model folder still shows everything else
        return []


def _clip_warning(mic: str, sim_flash: str) -> str | None:
    """Up front: a --mic clip too short for the detector the virtual board boots with can never fire it."""
    import soundfile as sf

    from .sim.core import DetectorConfig
    from .view import short_clip_warning

    cfg = DetectorConfig()
    try:
        from .sim.boot import boot

        det = boot(sim_flash).meta.get("detector")
        if isinstance(det, dict):
            cfg = DetectorConfig(**{k: det[k] for k in ("window", "min_count") if k in det})
    except Exception:  # no flash yet: main() says so; the firmware's defaults stand meanwhile
        pass
    return short_clip_warning(float(sf.info(mic).duration), cfg.window, cfg.min_count)


def _keyboard(board: dict[str, Any], view: Any) -> None:
    """A line typed on the terminal (Enter) goes to the board as it is, like esp-idf-monitor's console."""
    import sys
    import threading

    def loop() -> None:
        for line in sys.stdin:
            p = board.get("port")
            text = line.rstrip("\r\n")
            if p is None:
                view.mine("not connected: line not sent", "yellow")
                continue
            try:
                p.write(text.encode() + b"\n")
                view.mine(f"sent: {text}", "dim")
            except Exception as exc:  # the port dropped meanwhile; the reconnect loop deals with it
                view.mine(f"not sent ({exc})", "yellow")

    threading.Thread(target=loop, name="keyboard", daemon=True).start()


def main(port: str, baud: int, as_json: bool, log_path: str | None, reset: bool, reset_seq: str | None,
         duration: float | None, detect: tuple[str, ...], threshold: float | None, model_json: str,
         mic: str | None, fast: bool, sim_flash: str, plain: bool = False, scores: int = 0,
         elf: str | None = None, profile: str = "esp32s3-n16r8") -> None:
    """The `yamflash monitor` command: connect (auto/sim/path), reset, then pump into the chosen outputs."""
    import errno
    import sys

    from ..errors import UserError
    from . import ports

    # Everything the user can get wrong is checked before a virtual board is started or a port opened.
    classes = _classes(detect, model_json) if detect else []
    if log_path:
        from ..outputs import check_log

        log_path = str(check_log(log_path))
    if mic:
        if port != "sim":
            raise UserError("--mic plays a file into the virtual board; use it with --port sim.")
        from .sim.process import check_mic

        check_mic(mic)
    spawned = None
    if port == "sim":
        from .sim.process import find_running, spawn

        device = None if mic else find_running(sim_flash)
        if device is None:
            if not Path(sim_flash).is_file():
                raise UserError(f"the virtual board has no flash ({sim_flash}); run `yamflash flash --port sim`.")
            spawned = spawn(sim_flash, mic=mic, fast=fast)
            device = spawned.pty
        cand = None
        do_reset: Callable[[Any], None] | None = sim_reset if (reset and not spawned) else None
    else:
        target = ports.resolve(port, ask=ports.ask_click)
        cand = target if isinstance(target, ports.Candidate) else None
        device = cand.device if cand else str(target)
        if cand is None and device.startswith("/dev/") and not Path(device).exists():
            # Waiting is for a board that re-enumerates; a port absent at start is a typo or a cable.
            raise UserError(f"{device} does not exist; check the cable, or use --port auto.")
        cand = cand or follow(device)  # a USB port given by name is found again by its serial number
        do_reset = hardware_reset(reset_seq or DEFAULT_RESET) if reset else None

    from . import view as mv
    from .panic import Decoder, find_addr2line_prefix, find_elf

    state = State(port=device)
    current: dict[str, str | None] = {"device": device}
    log_file = live = None
    elf_path = Path(elf) if elf else (None if port == "sim" else find_elf(profile))
    terminal = not as_json and not plain and mv.is_terminal(sys.stdout)
    view = mv.View(state, (lambda text, style: None) if as_json else mv.plain_writer(sys.stdout),
                   labels=_labels(model_json), scores=scores, decoder=Decoder(elf_path, find_addr2line_prefix()))
    warning = _clip_warning(mic, sim_flash) if mic else None
    if warning and as_json:
        sys.stderr.write(f"yamflash: warning: {warning}\n")
    try:
        log_file = open_log(log_path)
        if terminal:
            from rich.console import Console
            from rich.live import Live

            live = Live(mv.render(state, view), console=Console(), refresh_per_second=4)
            view.write = mv.console_writer(live.console)  # lines go above the live status
        if warning:
            view.mine(f"warning: {warning}", "bold yellow")
        sink = mv.ViewSink(view, json_out=sys.stdout if as_json else None, log_file=log_file)
        t_end = None if duration is None else time.monotonic() + duration

        def stop() -> bool:
            if live is not None:
                live.update(mv.render(state, view))
            return t_end is not None and time.monotonic() >= t_end

        def opener() -> Any:
            dev = current["device"]
            if dev is None:
                raise OSError(errno.ENOENT, "the virtual board is not running")
            return ports.open_serial(dev, baud=baud)

        def present() -> bool:
            dev = current["device"]
            return dev is not None and Path(dev).exists()

        def wait_again() -> None:
            if spawned is not None:
                code = spawned.proc.poll()
                if code is not None:
                    raise UserError(f"the virtual board this monitor started has stopped (exit {code}); "
                                    "run the command again.")
                time.sleep(0.5)
            elif port == "sim":
                # A restarted virtual board is on a new pty (and the old pty's name may now be someone
                # else's terminal): find it again through sim.json, never reopen the old path blindly.
                current["device"] = find_running(sim_flash)
                if current["device"] is None:
                    time.sleep(0.5)
            elif cand is not None:
                current["device"] = ports.wait_for(cand, timeout=3600)
            else:
                time.sleep(0.5)
            if current["device"]:
                state.port = current["device"]

        def configure(p: Any) -> None:
            board["port"] = p
            if not board["asked"]:  # on a reconnect ask_info has asked already
                ask_info(p)
            board["asked"] = False
            if scores:  # the top-k view needs every inference's raw scores
                p.write(wire.encode({"t": "cmd", "id": 3, "cmd": "stream", "scores": True}))
            if classes:
                msg: dict[str, Any] = {"t": "cmd", "id": 1, "cmd": "detector", "classes": classes}
                if threshold is not None:
                    msg["threshold"] = threshold
                p.write(wire.encode(msg))

        def ask_info(p: Any) -> None:  # the board's hello went out while nobody listened
            p.write(wire.encode({"t": "cmd", "id": 2, "cmd": "info"}))
            board["asked"] = True

        board: dict[str, Any] = {"port": None, "asked": False}
        if not as_json and sys.stdin is not None and sys.stdin.isatty():
            _keyboard(board, view)
        if live is not None:
            live.start()
        run(opener, sink, stop, do_reset, reconnect_wait=wait_again, on_connect=configure,
            on_reconnect=ask_info, present=present)
    except KeyboardInterrupt:
        pass
    finally:
        view.extra.stopped = True
        summary = view.summary()
        if live is not None:
            live.update(mv.render(state, view))  # the last frame: stopped, with the summary
            live.stop()
        elif not as_json:
            for line in view.summary_lines():
                view.mine(line, None)
        if as_json:
            with contextlib.suppress(OSError):
                sys.stdout.write(json.dumps(summary) + "\n")
        if log_file:
            with contextlib.suppress(OSError):
                log_file.write(json.dumps({**summary, "host_ts": round(time.time(), 3)}) + "\n")
            with contextlib.suppress(OSError):
                log_file.close()
        if spawned:
            spawned.stop()
