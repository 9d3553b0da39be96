"""The monitor's parts without a board: folding events into the view, JSONL records, garbage, reconnects."""

from __future__ import annotations

import json

import pytest
from yamflash.board import connect, monitor, status, wire


class FakePort:
    """Serves byte chunks; an Exception instance in the script is raised (a USB device vanishing)."""

    def __init__(self, script):
        self.script = list(script)
        self.closed = False

    def read(self, n):
        if not self.script:
            return b""
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def write(self, data):
        pass

    def close(self):
        self.closed = True


DET = {"t": "det", "cls": 69, "label": "Dog", "score": 0.8, "ts_ms": 1455, "patch": 1}
HELLO = {"t": "hello", "fw": "a", "proto": 1, "board": "sim", "model_sha256": "0" * 64, "model_bytes": 1,
         "labels": 521, "frontend": {}, "input": {}, "output": {}, "arena": {"size": 1, "used": 1, "where": "psram"},
         "heap_free": 1, "psram_free": 1, "src": "mic", "clock": "host"}
STATS = {"t": "stats", "uptime_ms": 1, "inferences": 3, "dropped_samples": 0, "bad_lines": 0, "heap_free": 1,
         "heap_min": 1, "psram_free": 1, "psram_min": 1, "stack_hwm": {}, "arena": {"size": 1, "used": 1, "where": "x"}}


def enc(msg):
    return wire.encode(msg)


def test_state_latency_rate_and_detections():
    st = status.State()
    for i in range(100):
        st.add({"t": "timing", "patch": i, "frontend_us": 100 + i, "invoke_us": 1000 * (i + 1), "e2e_us": 5},
               now=i * 0.5)
    st.add({"t": "det", "label": "Dog", "score": 0.9, "ts_ms": 975, "patch": 0})
    st.add({"t": "stats", "dropped_samples": 0, "arena": {"size": 300, "used": 250, "where": "psram"}})
    p50, p95 = st.latency("invoke_us")
    assert p50 == pytest.approx(50500) and p95 == pytest.approx(95050)
    assert st.rate() == pytest.approx(2.0)
    assert st.detections[0]["label"] == "Dog"
    s = st.summary()
    assert s["arena"]["where"] == "psram" and s["dropped_samples"] == 0
    from rich.console import Console

    con = Console(record=True, width=120)
    con.print(monitor.render(st))
    text = con.export_text()
    assert "Dog" in text and "psram" in text and "2.00" in text


def test_garbage_partial_and_overlong_lines_are_counted(tmp_path):
    st = status.State()
    log = monitor.open_log(tmp_path / "ev.jsonl")
    sink = status.Sink(st, log_file=log)
    chunks = [b"I (12) boot: hello world\n", b"@yf {not json\n", b"@yf " + b"x" * 20000 + b"\n",
              enc(DET)[:10],
              enc(DET)[10:], b"\xff\xfe\n"]
    port = FakePort(chunks)
    n = {"i": 0}

    def stop():
        n["i"] += 1
        return n["i"] > len(chunks) + 1

    monitor.pump(port, wire.Splitter(), sink, stop)
    log.close()
    assert st.bad_lines == 2  # bad JSON + over-long
    assert list(st.detections)[0]["patch"] == 1
    lines = [json.loads(x) for x in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert [x["t"] for x in lines] == ["log", "det", "log"]
    assert all("host_ts" in x for x in lines)


def test_reconnects_after_the_device_drops():
    st = status.State()
    sink = status.Sink(st)
    opened, waits, resets = [], [], []
    scripts = [[enc(HELLO), OSError(5, "Input/output error")], [enc(STATS)]]

    def opener():
        if len(opened) == 1 and not waits:
            raise AssertionError("reopened before waiting")
        p = FakePort(scripts[len(opened)] if len(opened) < len(scripts) else [])
        opened.append(p)
        return p

    def stop():
        return st.stats is not None

    monitor.run(opener, sink, stop, reset=resets.append, reconnect_wait=lambda: waits.append(1))
    assert len(opened) == 2 and st.reconnects == 1 and len(waits) == 1
    assert len(resets) == 1  # reset only on the first connection, not on every re-enumeration
    assert st.hello["fw"] == "a" and st.stats["inferences"] == 3
    assert all(p.closed for p in opened)


def test_default_reset_never_asserts_dtr():
    """DTR (IO0) stays released so the chip boots the app, never the ROM download mode."""

    class Lines:
        def __init__(self):
            self.dtr, self.rts, self.log = False, False, []

        def setDTR(self, v):  # noqa: N802 (pyserial's name)
            self.dtr = v
            self.log.append(("D", v))

        def setRTS(self, v):  # noqa: N802
            self.rts = v
            self.log.append(("R", v))

    port = Lines()
    connect.hardware_reset(connect.DEFAULT_RESET)(port)
    assert ("R", True) in port.log and port.rts is False
    assert not any(k == "D" and v for k, v in port.log)
    with pytest.raises(Exception, match="not valid"):
        connect.hardware_reset("X9")
