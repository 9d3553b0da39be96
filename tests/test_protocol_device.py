"""The board's side of the protocol (yf_core's yf_device, which the firmware and the virtual board both run)
against the device-behaviour vectors in tests/vectors/protocol/device.jsonl: error codes, seq tracking, the
detector's partial update, bench's limit and nearest-rank percentiles, the stats counters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

VECTORS = [json.loads(s) for s in (Path(__file__).parent / "vectors" / "protocol" / "device.jsonl")
           .read_text(encoding="utf-8").splitlines() if s.strip()]
PATCH_B64 = "A" * 8192  # 6144 zero bytes




def make_app(native: Any, v: dict[str, Any]) -> Any:
    class App(native.DeviceApp):
        """A board that does what the vector says and records what yf_device asked of it."""

        def __init__(self) -> None:
            self.lines: list[bytes] = []
            self.calls = {"pcm_calls": 0, "bench_calls": 0}
            self.det = (native.DetectorSettings(), 10)
            self.device: Any = None

        def _refuse(self, op: str) -> None:
            if op in v.get("refuse", {}):
                raise native.OpError(*v["refuse"][op])

        def emit(self, line: bytes) -> None:
            self.lines.append(line)

        def hello(self) -> dict[str, Any]:
            return {"fw": "t", "board": "vector", "model_sha256": "00", "clock": "host", "labels": 10,
                    "arena_where": "psram", "in_scale": 0.5, "out_scale": 0.25}

        def source(self, src: str) -> None:
            self._refuse("source")

        def pcm(self, pcm: np.ndarray) -> int:
            self.calls["pcm_calls"] += 1
            return len(pcm)

        def patch(self, req: Any) -> None:
            self._refuse("patch")
            assert req.q.shape == (6144,) and not req.q.any()
            self.emit(native.Device.patch_reply(req, np.array([1, 2, 3], np.int8), 7))

        def stream(self, scores: bool, patches: bool) -> None:
            pass

        def detector_get(self) -> tuple[Any, int]:
            return self.det

        def detector_set(self, settings: Any) -> None:
            self.det = (settings, 10)

        def bench(self, id: int, n: int) -> None:
            self.calls["bench_calls"] += 1
            us = v.get("bench_us", [100])
            times = list(np.random.default_rng(0).permutation(np.arange(1, n + 1))) if us == "range" else \
                [us[i % len(us)] for i in range(n)]
            self.emit(native.Device.bench_reply(id, times))

        def reset(self) -> None:
            pass

    return App()


def subset(got: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and subset(got[k], w) for k, w in want.items())
    if isinstance(want, float):
        return got == pytest.approx(want)
    return got == want


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_device_vector(native, v):
    from yamflash.board import protocol as P

    app = make_app(native, v)
    dev = native.Device(app, v["src"])
    for step in v["steps"]:
        before = len(app.lines)
        if "send" in step:
            msg = {"t": "cmd", **{k: (PATCH_B64 if x == "PATCH" else x) for k, x in step["send"].items()}}
            dev.feed(P.encode(msg))
        elif "raw" in step:
            dev.feed(step["raw"].encode())
        else:
            dev.stats(arena_where="psram", **step["stats"])
        out = [P.parse(line) for line in app.lines[before:]]  # every line the device wrote is valid protocol
        if "reply" in step:
            if step["reply"] is None:
                assert out == []
            else:
                assert len(out) == 1 and out[0]["t"] == "reply" and out[0]["id"] == step["send"]["id"]
                assert subset(out[0], step["reply"]), out[0]
        if "event" in step:
            assert len(out) == 1 and subset(out[0], step["event"]), out
        if "bad_lines" in step:
            assert dev.bad_lines == step["bad_lines"]
        for k, n in step.get("app", {}).items():
            assert app.calls[k] == n, k


def test_python_and_c_decoders_give_the_same_message_at_every_limit(native):
    """Both decoders are built from the spec's argument table: at each range's edges they accept and refuse
    the same values, with the same E_ARG text."""
    from yamflash.board import protocol as P
    from yamflash.protocol_spec import load

    checked = 0
    for a in load().args():
        if a.type not in ("int", "uint32", "num"):
            continue
        for x in (a.lo - 1, a.lo, a.hi, a.hi + 1):
            args = {b.name: (0 if b.type == "uint32" else PATCH_B64[: 4 * (6144 // 3)] if b.name == "q" else "AAA=")
                    for b in load().args(a.cmd) if b.required}
            args[a.name] = int(x) if a.type != "num" else float(x)
            raw = P.encode({"t": "cmd", "id": 1, "cmd": a.cmd, **args})[len(P.PREFIX):-1]
            status, c = native.parse_cmd(raw)
            try:
                P.parse_command(raw)
                py, py_msg = native.PARSE_OK, None
            except P.ProtocolError as exc:
                py, py_msg = native.PARSE_ARG, str(exc)
            assert status == py, (a.cmd, a.name, x)
            inside = a.lo <= x <= a.hi
            assert (status == native.PARSE_OK) == inside, (a.cmd, a.name, x)
            if not inside:
                assert c["msg"] == py_msg == a.message
            checked += 1
    assert checked >= 28  # seq x2, threshold, window, min_count, refractory_ms, n: four edges each


def test_virtual_board_answers_through_yf_device():
    """The sim's command handlers are gone: its console feeds the C device (no Python re-validation)."""
    from yamflash.board.sim import device

    src = Path(device.__file__).read_text()
    assert "native.Device(" in src and "device.feed(" in src
    assert "def cmd_" not in src and "CmdError" not in src and "np.percentile" not in src
