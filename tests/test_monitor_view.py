"""What a person sees in `yamflash monitor` (issue 13, findings 3, 4 and 7), fed from fake boards.

Device text must come out as sent (never parsed as markup), a panic and its decoded backtrace must stay on
screen, a reconnect is said, the board line names firmware/model/clock, and the run ends with a summary.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console
from simboard import cli, tiny_sim, write_wav  # noqa: F401  (tiny_sim is a fixture)
from test_monitor import DET, HELLO, STATS, FakePort, enc
from yamflash.board import monitor, status, wire
from yamflash.board import view as monitor_view
from yamflash.board.panic import Decoder

MARKUP = ["I (141) yf_tasks: [file.c:141] ready", "W (142) x: [bold]not bold[/] and [/] alone",
          "\x1b[0;32mI (143) boot: [red]green from ESP-IDF[/red]\x1b[0m"]
GURU = "Guru Meditation Error: Core  1 panic'ed (LoadProhibited). Exception was unhandled."


def text_of(renderable, width: int = 160) -> str:
    con = Console(record=True, width=width, file=io.StringIO())
    con.print(renderable)
    return con.export_text()


def plain_view(**kw):
    out = io.StringIO()
    st = status.State(port="/dev/ttyFAKE")
    view = monitor_view.View(st, monitor_view.plain_writer(out), **kw)
    return st, view, out


def feed(view, lines, log=None):
    """Lines through monitor.pump into a ViewSink, as the serial port would deliver them."""
    sink = monitor_view.ViewSink(view, log_file=log)
    data = [ln if isinstance(ln, bytes) else ln.encode() + b"\n" for ln in lines]
    port = FakePort(data)
    n = {"i": 0}

    def stop():
        n["i"] += 1
        return n["i"] > len(data) + 1

    monitor.pump(port, wire.Splitter(), sink, stop)
    return sink


def test_device_text_is_shown_as_sent_in_plain_and_terminal_mode():
    """Before: `[file.c:141]`, `[bold]`, `[/]` were parsed as rich markup and vanished (or raised)."""
    st, view, out = plain_view()
    feed(view, MARKUP)
    assert out.getvalue().splitlines() == MARKUP  # byte for byte, every line, in order
    con = Console(record=True, width=200, file=io.StringIO())
    write = monitor_view.console_writer(con)
    for line in MARKUP:
        write(line, None)
    shown = con.export_text().splitlines()
    assert shown[:2] == MARKUP[:2]
    assert shown[2] == "I (143) boot: [red]green from ESP-IDF[/red]"  # ESP-IDF's colour codes rendered, not shown


def _host_elf(tmp_path: Path) -> tuple[Path, str]:
    """A 32-bit host ELF (addr2line then prints 8-digit addresses, as for the ESP32-S3's Xtensa) with a known
    function at a known line, and an address inside it; skips where gcc cannot build for -m32."""
    src = tmp_path / "crash.c"
    src.write_text("int g;\nvoid yf_crash_here(int *p) {\n  g = *p;\n}\n"
                   "int main(void) { yf_crash_here(0); return 0; }\n")
    elf = tmp_path / "crash.elf"
    made = subprocess.run(["gcc", "-m32", "-g", "-O0", "-no-pie", str(src), "-o", str(elf)], capture_output=True)
    if made.returncode:
        pytest.skip("gcc cannot build a 32-bit host ELF here (no multilib)")
    nm = subprocess.run(["nm", str(elf)], check=True, capture_output=True, text=True).stdout
    addr = next(int(ln.split()[0], 16) for ln in nm.splitlines() if ln.endswith(" yf_crash_here"))
    assert addr < 1 << 32
    return elf, f"0x{addr + 4:08x}"


@pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("addr2line") and shutil.which("nm")),
                    reason="needs gcc, nm and addr2line to build and read a host ELF")
def test_a_panic_and_its_decoded_backtrace_stay_on_screen(tmp_path):
    """esp-idf-panic-decoder with the host's addr2line on a host ELF: the same code path as the Xtensa one."""
    elf, pc = _host_elf(tmp_path)
    st, view, out = plain_view(decoder=Decoder(elf, ""))
    noise = [f"I ({i}) yf: after the reboot [{i}]" for i in range(200)]
    feed(view, ["I (10) yf: running", GURU, "Core  1 register dump:", "PC      : 0x42001234  PS      : 0x00060030",
                f"Backtrace: {pc}:0x3fcb5590 0x40000000:0x3fcb55b0", "", "ELF file SHA256: 0123", "Rebooting...",
                *noise])
    lines = out.getvalue().splitlines()
    assert GURU in lines and any(ln.startswith("Backtrace: ") for ln in lines)
    decoded = [ln for ln in lines if ln.startswith(f"--- {pc}: yf_crash_here at ")]
    assert decoded and decoded[0].endswith(("crash.c:2", "crash.c:3")), lines[:12]  # a line of that function
    # 200 lines later the live status still pins the panic, decoded
    status = text_of(monitor_view.render(st, view))
    assert GURU in status and "yf_crash_here at" in status and "crash.c:" in status
    assert view.summary()["panics"][0][0] == GURU


def test_without_elf_or_addr2line_the_line_says_so(tmp_path):
    st, view, out = plain_view(decoder=Decoder(None, None))
    feed(view, [GURU, "Backtrace: 0x42001234:0x3fcb5590"])
    assert "--- backtrace not decoded: no firmware ELF" in out.getvalue()
    elf = tmp_path / "fw.elf"
    elf.write_bytes(b"\x7fELF")
    assert "no Xtensa addr2line" in Decoder(elf, None).decode("Backtrace: 0x42001234:0x3fcb5590")[0]


def test_reconnect_board_line_and_summary_in_plain_mode_and_log(tmp_path):
    """A board that drops and comes back: said once each, hello/info fill the board line, the summary counts."""
    st, view, out = plain_view()
    info = {**HELLO, "t": "reply", "id": 2, "cmd": "info", "ok": True}
    timing = {"t": "timing", "patch": 1, "frontend_us": 100, "invoke_us": 60000, "e2e_us": 70000}
    scripts = [[enc(HELLO), enc(DET), enc(timing), OSError(5, "Input/output error")],
               [enc(info), b"I (1) [yf]: back\n", enc({**DET, "patch": 5}), enc(STATS)]]
    opened = []

    def opener():
        p = FakePort(scripts[len(opened)] if len(opened) < len(scripts) else [])
        opened.append(p)
        return p

    log = monitor.open_log(tmp_path / "ev.jsonl")
    sink = monitor_view.ViewSink(view, log_file=log)
    monitor.run(opener, sink, lambda: st.stats is not None, None, reconnect_wait=lambda: None)
    view.extra.stopped = True
    for line in view.summary_lines():
        view.mine(line, None)
    log.close()
    lines = out.getvalue().splitlines()
    board = [ln for ln in lines if ln.startswith("--- board sim: fw a, model 000000000000")]
    assert len(board) == 1 and "host clock (this PC's timings, not the chip's)" in board[0]
    assert sum("--- detected Dog 0.80" in ln for ln in lines) == 2
    assert any(ln.startswith("--- port lost") for ln in lines) and "--- reconnected to " in out.getvalue()
    assert "I (1) [yf]: back" in lines
    summary = [ln for ln in lines if ln.startswith("--- summary after")]
    assert summary and "2 detections: Dog x2" in summary[0] and "3 inferences" in summary[0]
    assert any("reconnects 1" in ln for ln in lines)
    assert any("end to end p50 70.0 ms" in ln and "not chip figures" in ln for ln in lines)
    s = view.summary()
    assert s["detections_per_class"] == {"Dog": 2} and s["reconnects"] == 1
    recs = [json.loads(x) for x in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert [r["text"] for r in recs if r["t"] == "log"][-1] == "I (1) [yf]: back"


def test_the_status_names_board_clock_nominal_memory_and_never_says_waiting_when_stopped():
    """Before: `waiting for the board fw ? model ? timings: ? clock` to the end, memory unlabelled."""
    st = status.State(port="sim")
    view = monitor_view.View(st, lambda text, style: None)
    before = text_of(monitor_view.render(st, view))
    assert "waiting for the board" in before and "not heard from yet" in before
    feed(view, [enc({**HELLO, "mem": "nominal", "fw": "0.9.1"}), enc(STATS), enc(DET)])
    view.extra.stopped = True
    after = text_of(monitor_view.render(st, view))
    assert "waiting" not in after and "stopped after" in after
    assert "fw 0.9.1" in after and "host clock: this PC, not the chip" in after
    assert "heap free (nominal)" in after and "PSRAM free (nominal)" in after
    assert "summary after" in after and "Dog x1" in after and "nominal (an ESP32-S3 budget)" in after


def test_top_k_and_a_clip_too_short_for_the_detector():
    q = bytes([(x - 128) & 0xFF for x in (0, 200, 50, 255)])  # int8 -128, 72, -78, 127
    top = monitor_view.top_k(q, 1 / 256, -128, ["a", "b", "c", "d"], 3)
    assert [lab for lab, _ in top] == ["d", "b", "c"] and top[0][1] == pytest.approx(255 / 256)
    assert monitor_view.clip_patches(1.0) == 1 and monitor_view.clip_patches(5.0) == 9
    w = monitor_view.short_clip_warning(1.0, 3, 2)
    assert w and "can never fire" in w and "at least 1.46 s" in w
    assert monitor_view.short_clip_warning(1.46, 3, 2) is None


def test_monitor_cli_scores_board_line_and_clip_warning_on_the_virtual_board(tiny_sim, tmp_path, capsys):  # noqa: F811
    """End to end on the virtual board, piped (plain mode): info asked, top-3 per inference, short-clip warning."""
    wav = write_wav(tmp_path / "short.wav", 1.0)
    rc = cli("monitor", "--port", "sim", "--sim-flash", str(tiny_sim.flash), "--model-json",
             str(tiny_sim.model_dir / "model.json"), "--mic", str(wav), "--scores", "--duration", "4",
             "--log", str(tmp_path / "ev.jsonl"))
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert any(ln.startswith("--- warning: the clip is 1.00 s: 1 patch of audio") for ln in out), out[:20]
    assert any(ln.startswith("--- board sim: fw ") and "host clock" in ln for ln in out), out[:20]
    tops = [ln for ln in out if ln.startswith("--- patch 0: ")]
    assert len(tops) == 1 and tops[0].count("|") == 2 and ("Speech" in tops[0] or "sound " in tops[0])
    assert any(ln.startswith("--- summary after") for ln in out)
    last = json.loads((tmp_path / "ev.jsonl").read_text().splitlines()[-1])
    assert last["t"] == "summary" and last["reconnects"] == 0 and last["fw"]
