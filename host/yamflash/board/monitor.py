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
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import wire
from .status import Sink, State


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
    from ..manifest import ModelManifest

    labels = ModelManifest.load(model_json).labels
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
        from ..manifest import ModelManifest

        return ModelManifest.load(model_json).labels
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


@dataclass
class MonitorOptions:
    """What `yamflash monitor` connects to and shows (its flags; the CLI fills every field by keyword)."""

    port: str  # sim, auto or a serial device
    baud: int = 115200
    as_json: bool = False  # one JSON object per line on stdout
    log_path: str | None = None  # JSONL record, appended to
    reset: bool = True  # reset the board on connect
    reset_seq: str | None = None  # esptool's custom-reset syntax (default connect.DEFAULT_RESET)
    duration: float | None = None  # seconds, then stop
    detect: tuple[str, ...] = ()  # labels to watch (model_json resolves them)
    threshold: float | None = None
    model_json: str = "build/model/model.json"
    mic: str | None = None  # with port sim: a WAV the virtual board started here hears
    fast: bool = False
    sim_flash: str = "build/sim/flash.bin"
    plain: bool = False  # plain lines, no live status
    scores: int = 0  # top-k scores of every inference (0: none)
    elf: str | None = None  # for panic backtraces
    profile: str = "esp32s3-n16r8"


def monitor(o: MonitorOptions) -> None:
    """The `yamflash monitor` command: connect (auto/sim/path, through connect.py), reset, then pump into the
    chosen outputs until the duration ends or Ctrl-C."""
    import sys

    from ..errors import UserError
    from .connect import target_from_spec

    # Everything the user can get wrong is checked before a virtual board is started or a port opened.
    classes = _classes(o.detect, o.model_json) if o.detect else []
    log_path = o.log_path
    if log_path:
        from ..outputs import check_log

        log_path = str(check_log(log_path))
    if o.mic:
        if o.port != "sim":
            raise UserError("--mic plays a file into the virtual board; use it with --port sim.")
        from .sim.process import check_mic

        check_mic(o.mic)
    # --mic needs a virtual board of its own (one found running hears another file, or none)
    target = target_from_spec(o.port, sim_flash=o.sim_flash, mic=o.mic, fast=o.fast, fresh=bool(o.mic),
                              reset_seq=o.reset_seq)
    device = target.start()
    do_reset = target.reset(o.reset)
    as_json, scores, threshold = o.as_json, o.scores, o.threshold

    from . import view as mv
    from .panic import Decoder, find_addr2line_prefix, find_elf

    state = State(port=device)
    log_file = live = None
    elf_path = Path(o.elf) if o.elf else (None if o.port == "sim" else find_elf(o.profile))
    terminal = not as_json and not o.plain and mv.is_terminal(sys.stdout)
    view = mv.View(state, (lambda text, style: None) if as_json else mv.plain_writer(sys.stdout),
                   labels=_labels(o.model_json), scores=scores, decoder=Decoder(elf_path, find_addr2line_prefix()))
    warning = _clip_warning(o.mic, o.sim_flash) if o.mic else None
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
        t_end = None if o.duration is None else time.monotonic() + o.duration

        def stop() -> bool:
            if live is not None:
                live.update(mv.render(state, view))
            return t_end is not None and time.monotonic() >= t_end

        def wait_again() -> None:
            target.reopen_wait()
            if target.device:
                state.port = target.device

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
        run(lambda: target.open_port(o.baud), sink, stop, do_reset, reconnect_wait=wait_again,
            on_connect=configure, on_reconnect=ask_info, present=target.present)
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
        target.close()
