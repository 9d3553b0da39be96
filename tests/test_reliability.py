"""Issue 12's reliability defects, each with the test that failed before its fix.

- the monitor follows a virtual board that restarts on a new pty, says "reconnected" on screen and in --log,
  re-asks `info`, and neither loses nor repeats an event (defects 3 and 11);
- a busy port after a reconnect, and a full disk under --log, end the monitor with one error instead of a
  silent retry loop (defects 2 and 6); a USB board given by name is followed by its serial number;
- the virtual board counts bad lines exactly as the firmware does, plain text not included (defect 9);
- the C and Python decoders agree on the sign of a zero threshold and on the longest command (defect 10);
- a non-audio microphone file is refused before the virtual board starts (defect 8).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from simboard import model_dir, sim_manifest, write_wav
from yamflash.board import monitor, protocol, status, wire
from yamflash.errors import UserError


# ---- the monitor's loop, without a board ------------------------------------------------------------------
class FakePort:
    def __init__(self, script: list, name: str = "/dev/fake"):
        self.script, self.port, self.written, self.closed = list(script), name, [], False

    def read(self, n: int) -> bytes:
        if not self.script:
            return b""
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


DET = {"t": "det", "cls": 1, "label": "Dog", "score": 0.8, "ts_ms": 975, "patch": 1}


class FullFile:
    name = "/mnt/full/ev.jsonl"

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self) -> None:
        pass


def test_a_full_disk_under_log_ends_the_monitor_with_one_error():
    """Before: the OSError looked like a lost port, and the monitor retried forever."""
    st = status.State()
    sink = status.Sink(st, log_file=FullFile())
    opened = []

    def opener():
        opened.append(1)
        return FakePort([wire.encode(DET)])

    with pytest.raises(UserError, match=r"cannot write /mnt/full/ev.jsonl: No space left.*--log"):
        monitor.run(opener, sink, lambda: len(opened) > 5, None, reconnect_wait=lambda: None)
    assert len(opened) == 1


def test_a_port_taken_while_the_board_was_away_is_an_error():
    """After a drop, failures to open are waited out while the device is gone, but not once it is back and
    someone else holds it."""
    st = status.State()
    calls = {"n": 0}

    def opener():
        calls["n"] += 1
        if calls["n"] == 1:
            return FakePort([OSError(errno.EIO, "Input/output error")])
        raise UserError("/dev/fake is busy: another program has it open")

    t0 = time.monotonic()
    with pytest.raises(UserError, match="busy"):
        monitor.run(opener, status.Sink(st), lambda: time.monotonic() - t0 > 10, None,
                    reconnect_wait=lambda: time.sleep(0.05), present=lambda: True, grace=0.3)
    assert time.monotonic() - t0 < 5 and st.reconnects == 1


def test_a_board_that_is_away_is_waited_for():
    st, calls = status.State(), {"n": 0}

    def opener():
        calls["n"] += 1
        if calls["n"] == 1:
            return FakePort([OSError(errno.EIO, "Input/output error")])
        if calls["n"] < 20:
            raise OSError(errno.ENOENT, "No such file or directory")
        return FakePort([wire.encode(DET)])

    monitor.run(opener, status.Sink(st), lambda: st.detections, None, reconnect_wait=lambda: None,
                present=lambda: False, grace=0.0)
    assert calls["n"] == 20 and st.detections[0]["label"] == "Dog"


def test_first_open_failure_is_not_retried():
    """Before: `monitor` on a busy port waited silently and exited 0."""
    tries = []

    def opener():
        tries.append(1)
        raise UserError("/dev/x is busy")

    with pytest.raises(UserError, match="busy"):
        monitor.run(opener, status.Sink(status.State()), lambda: len(tries) > 50, None,
                    reconnect_wait=lambda: None)
    assert len(tries) == 1


def test_reconnect_is_said_and_info_is_asked_again(tmp_path):
    st = status.State()
    log = monitor.open_log(tmp_path / "ev.jsonl")
    sink = status.Sink(st, log_file=log)
    hello = {"t": "hello", "fw": "a", "proto": 1, "board": "sim", "model_sha256": "0" * 64, "model_bytes": 1,
             "labels": 8, "frontend": {}, "input": {}, "output": {}, "arena": {"size": 1, "used": 1, "where": "psram"},
             "heap_free": 1, "psram_free": 1, "src": "mic", "clock": "host"}
    info = {"t": "reply", "id": 2, "cmd": "info", "ok": True, **{k: v for k, v in hello.items() if k != "t"},
            "fw": "b"}
    ports = [FakePort([wire.encode(hello), OSError(errno.EIO, "Input/output error")], "/dev/pts/7"),
             FakePort([wire.encode(info), wire.encode(DET)], "/dev/pts/9")]

    def ask(p):
        p.write(wire.encode({"t": "cmd", "id": 2, "cmd": "info"}))

    monitor.run(lambda: ports.pop(0), sink, lambda: bool(st.detections), None, reconnect_wait=lambda: None,
                on_reconnect=ask)
    log.close()
    recs = [json.loads(x) for x in (tmp_path / "ev.jsonl").read_text().splitlines()]
    texts = [r.get("text", "") for r in recs if r["t"] == "log"]
    assert any("port lost" in t for t in texts) and any("reconnected to /dev/pts/9" in t for t in texts)
    assert st.hello["fw"] == "b"  # the view shows the board as it is after the reconnect
    assert [r["t"] for r in recs] == ["hello", "log", "log", "reply", "det"]


def test_a_usb_port_given_by_name_is_followed_by_serial_number(tmp_path):
    from types import SimpleNamespace

    from yamflash.board import ports

    listing = [SimpleNamespace(device="/dev/ttyACM0", vid=0x303A, pid=0x1001, serial_number="F4:12", description="")]
    cand = ports.follow("/dev/ttyACM0", listing=lambda: listing)
    assert cand is not None and cand.serial_number == "F4:12"
    later = [SimpleNamespace(device="/dev/ttyACM1", vid=0x303A, pid=0x1001, serial_number="F4:12", description="")]
    assert ports.wait_for(cand, timeout=1, ports=lambda: later) == "/dev/ttyACM1"
    link = tmp_path / "usb-Espressif_USB_JTAG_serial_debug_unit_F4:12-if00"
    link.symlink_to("/dev/ttyACM0")
    assert ports.follow(str(link), listing=lambda: listing) is None  # the by-id link follows by itself


# ---- the virtual board ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flash_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from yamflash.board import flash as fl

    root = tmp_path_factory.mktemp("rel")
    f = root / "sim" / "flash.bin"
    fl.flash_sim(fl.load_plan(sim_manifest(model_dir(root / "model"))), f)
    return f


def garbage(n: int, seed: int) -> bytes:
    """Malformed input of every kind the console meets: random bytes, plain text, broken JSON, commands without
    an id or with wrong arguments (these get a failed reply instead), over-long lines."""
    rng = np.random.default_rng(seed)
    shapes = [
        lambda: bytes(rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8)).replace(b"\n", b"") + b"\n",
        lambda: b"plain text the firmware ignores " + str(int(rng.integers(1e6))).encode() + b"\n",
        lambda: b"@yf {" + bytes(rng.integers(32, 127, int(rng.integers(0, 80)), dtype=np.uint8)) + b"\n",
        lambda: b'@yf {"t":"cmd","v":1}\n',
        lambda: b'@yf {"t":"cmd","v":1,"id":"x","cmd":"ping"}\n',
        lambda: b"@yf [1,2,3]\n",
        lambda: b'@yf {"t":"cmd","v":1,"id":7,"cmd":"pcm","seq":0,"d":"!!"}\n',
        lambda: b'@yf {"t":"stats","v":1}\n',
        lambda: b"@yf " + b"A" * 13000 + b"\n",
    ]
    return b"".join(shapes[int(i) % len(shapes)]() for i in rng.permutation(n))


def expected_bad_lines(payload: bytes) -> tuple[int, int]:
    """(Python's count, C's count) of what the firmware counts: over-long lines and @yf lines that do not
    parse as an addressable command. Plain text is not counted."""
    from yamflash.target import native

    py = protocol.LineSplitter()
    n_py = sum(1 for ln in py.feed(payload) if wire.classify(ln.data, device=True).kind == "bad"
               and wire.classify(ln.data, device=True).reply is None) + py.long
    asm = native.LineAssembler()
    n_c = sum(1 for kind, text in asm.feed(payload)
              if kind == "proto" and native.parse_cmd(text[len(protocol.PREFIX):])[0] == native.PARSE_BAD)
    return n_py, n_c + asm.counts["long"]


def test_bad_lines_count_exactly_what_the_firmware_counts(flash_file):
    """Before: the virtual board also counted plain-text lines, which yf_tasks.c ignores."""
    from yamflash.board import ports
    from yamflash.board.client import Board
    from yamflash.board.sim.device import VirtualBoard

    payload = garbage(2000, seed=3)
    want_py, want_c = expected_bad_lines(payload)
    assert want_py == want_c and 0 < want_py < 2000
    vb = VirtualBoard(flash_file, stats_period=0.3).start()
    b = Board(ports.open_serial(vb.path), name="sim")
    try:
        assert b.ping()
        for k in range(0, len(payload), 1 << 14):
            b.write_raw(payload[k : k + (1 << 14)])
        assert b.ping(timeout=30)
        stats = b.wait_event(lambda e: e.get("t") == "stats", 10, since=b.mark())
        assert stats["bad_lines"] == want_py == vb.bad_lines
    finally:
        b.close()
        vb.close()


def test_a_non_audio_microphone_is_refused_before_the_board_starts(flash_file, tmp_path):
    """Before: the capture thread died with a traceback and the board ran on without a microphone."""
    from yamflash.board.sim.device import VirtualBoard

    junk = tmp_path / "notes.wav"
    junk.write_text("not audio")
    with pytest.raises(UserError, match="cannot decode audio"):
        VirtualBoard(flash_file, mic=junk)


def _records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # the monitor may be mid-line while we read
            out.append(json.loads(line))
    return out


def _wait(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def check_stream(recs: list[dict]) -> dict[str, int]:
    """Lost and duplicated events in a monitor's JSONL: per board session (split at each reconnect), the timing
    events' patch numbers must run on by one, and no event may appear twice."""
    seen, dup, lost, sessions, patches = set(), 0, 0, [[]], []
    for r in recs:
        if r["t"] == "log" and "[yamflash monitor] reconnected" in r.get("text", ""):
            sessions.append([])
        # boards of the same flash say the same hello: a repeat counts only within one session
        key = f"{len(sessions)} " + json.dumps({k: v for k, v in r.items() if k != "host_ts"}, sort_keys=True)
        if r["t"] != "log":
            dup += key in seen
            seen.add(key)
        if r["t"] in ("timing", "hello"):
            sessions[-1].append(r)
    for s in sessions:
        # every session is one boot of a board, heard from the moment the monitor opened its port (what the
        # board said before that is not the monitor's to log: opening a port drops its stale input, and the
        # monitor asks `info` instead); from then on its patch numbers run on by one, and a gap is a lost event
        nums = [r["patch"] for r in s if r["t"] == "timing"]
        patches.append(len(nums))
        for a, b in zip(nums, nums[1:], strict=False):
            if b <= a:
                dup += 1
            lost += max(0, b - a - 1)
    return {"duplicated": dup, "lost": lost, "sessions": len(sessions), "timing_events": sum(patches)}


def test_monitor_follows_a_virtual_board_restarted_on_a_new_pty(flash_file, tmp_path):
    """Three restarts of the virtual board, each on a new pty: the monitor finds each through sim.json, says
    so on screen and in --log, asks `info` again, and neither loses nor repeats an event.
    Before: it reopened the dead pty forever and the log stopped at "port lost"."""
    from yamflash.board.sim.process import find_running, spawn

    wav = write_wav(tmp_path / "mic.wav", 3.0)
    log = tmp_path / "ev.jsonl"
    boards = [spawn(flash_file, mic=wav, loop=True, stats_period=0.5)]
    mon = subprocess.Popen([sys.executable, "-m", "yamflash", "monitor", "--port", "sim", "--sim-flash",
                            str(flash_file), "--json", "--no-reset", "--log", str(log), "--duration", "60"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ptys = [boards[0].pty]
    try:
        _wait(lambda: _timing_after_reconnect(_records(log), 0), 30, "the first timing events")
        for i in range(3):
            nxt = spawn(flash_file, mic=wav, loop=True, stats_period=0.5)  # while the old pty still exists
            boards.append(nxt)
            ptys.append(nxt.pty)
            assert find_running(flash_file) == nxt.pty
            boards[-2].proc.kill()  # power cut: no goodbye
            boards[-2].proc.wait(5)
            _wait(lambda n=i + 1: sum("reconnected" in r.get("text", "") for r in _records(log)) >= n, 20,
                  f"reconnect {i + 1}")
            _wait(lambda n=i + 1: _timing_after_reconnect(_records(log), n), 30, f"events after reconnect {i + 1}")
    finally:
        mon.terminate()
        out, err = mon.communicate(timeout=20)
        for b in boards:
            b.stop()
    assert all(a != b for a, b in zip(ptys, ptys[1:], strict=False)), ptys  # each restart on another pty
    recs = _records(log)
    texts = [r.get("text", "") for r in recs if r["t"] == "log"]
    assert sum("port lost" in t for t in texts) == 3
    assert [t.split()[-1] for t in texts if "reconnected to" in t] == ptys[1:]
    # after every reconnect the board is asked for `info` again (and its reply is in the log)
    after = [i for i, r in enumerate(recs) if "reconnected to" in r.get("text", "")]
    for i, j in zip(after, [*after[1:], len(recs)], strict=True):
        assert any(r["t"] == "reply" and r.get("cmd") == "info" and r["ok"] for r in recs[i:j]), recs[i:j]
    on_screen = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert sum("reconnected" in r.get("text", "") for r in on_screen) == 3
    s = check_stream(recs)
    assert s == {**s, "duplicated": 0, "lost": 0, "sessions": 4} and s["timing_events"] >= 8, s
    assert "Traceback" not in err


def _timing_after_reconnect(recs: list[dict], n: int, want: int = 2) -> bool:
    """At least ``want`` timing events after the n-th reconnect (0: from the start)."""
    seen = got = 0
    for r in recs:
        if r["t"] == "log" and "reconnected" in r.get("text", ""):
            seen += 1
        elif seen >= n and r["t"] == "timing":
            got += 1
    return got >= want


# ---- the two decoders -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("zero", ["-0", "-0.0", "-0e3", "-0.000E-2", "0", "0.0"])
def test_a_zero_threshold_decodes_as_plus_zero_in_c_and_python(zero):
    """Before: C gave -0.0, Python 0 ("-0" is an int in Python's JSON)."""
    from yamflash.target import native

    line = b'{"t":"cmd","v":1,"id":5,"cmd":"detector","threshold":' + zero.encode() + b"}"
    status, c = native.parse_cmd(line)
    py = protocol.parse_command(line)
    assert status == native.PARSE_OK
    assert c["threshold"] == py["threshold"] == 0.0
    assert math.copysign(1.0, c["threshold"]) == math.copysign(1.0, py["threshold"]) == 1.0


@pytest.mark.parametrize("extra", [-1, 0, 1, 500])
def test_both_decoders_refuse_the_same_over_long_commands(extra):
    """Before: Python accepted commands longer than the 12,288 bytes C refuses."""
    from yamflash.target import native

    head = b'{"t":"cmd","v":1,"id":1,"cmd":"ping","pad":"'
    line = head + b"x" * (protocol.MAX_LINE + extra - len(head) - 2) + b'"}'
    assert len(line) == protocol.MAX_LINE + extra
    status, _ = native.parse_cmd(line)
    try:
        protocol.parse_command(line)
        py = native.PARSE_OK
    except protocol.ProtocolError as exc:
        assert exc.code == protocol.BAD
        py = native.PARSE_BAD
    assert status == py == (native.PARSE_OK if extra <= 0 else native.PARSE_BAD)
