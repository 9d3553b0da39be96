"""A host-side client for a board (real or virtual) that speaks docs/protocol.md.

One reader thread owns the port: it splits lines, hands replies to whoever waits on their id, keeps
events in arrival order and passes log lines on. Commands are synchronous (send, await the reply by
id), which is also the flow control for PCM: the next chunk goes out when the board has accepted the
last one, so nothing is dropped on the way in.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..frontend import PARAMS
from . import protocol, wire

PCM_CHUNK = protocol.MAX_PCM_SAMPLES  # samples per `pcm` command: the protocol's maximum, 10.9 kB of base64


class BoardError(UserError):
    """The board answered a command with ok:false, or did not answer in time."""


def count_patches(samples: int, win: int = PARAMS.frame_length, hop: int = PARAMS.frame_step,
                  patch: int = PARAMS.patch_frames, patch_hop: int = PARAMS.patch_hop_frames) -> int:
    """Patches a streaming frontend emits for ``samples`` contiguous samples (no padding, unlike YAMNet)."""
    frames = 0 if samples < win else 1 + (samples - win) // hop
    return 0 if frames < patch else 1 + (frames - patch) // patch_hop


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """Float [-1, 1] to int16 as a 16-bit I2S microphone would deliver it."""
    return np.clip(np.round(np.asarray(x, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


class Board:
    """Connected board: commands with replies, an event log, and the HIL helpers built on them."""

    def __init__(self, port: Any, on_log: Callable[[str], None] | None = None, name: str = "board"):
        self.port = port
        self.name = name
        self.on_log = on_log
        self.splitter = wire.Splitter()
        self.bad_lines = 0
        self.logs: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.hello: dict[str, Any] | None = None
        self._ids = itertools.count(1)
        self._replies: dict[int, dict[str, Any]] = {}
        self._cv = threading.Condition()
        self._wlock = threading.Lock()
        self._seq = {"pcm": 0, "patch": 0}
        self._stop = threading.Event()
        self.alive = True
        self._reader = threading.Thread(target=self._read_loop, name=f"{name}-reader", daemon=True)
        self._reader.start()

    # ---- transport -------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.port.read(max(1, int(getattr(self.port, "in_waiting", 0) or 0)))
            except Exception:  # the port went away (USB reset, sim exit): waiters see `alive` False
                break
            if not data:
                continue
            for raw in self.splitter.feed(data):
                self._dispatch(wire.classify(raw))
        with self._cv:
            self.alive = False
            self._cv.notify_all()

    def _dispatch(self, line: wire.Line) -> None:
        if line.kind == "log":
            self.logs.append(line.text)
            if self.on_log:
                self.on_log(line.text)
            return
        with self._cv:
            if line.kind == "bad":
                self.bad_lines += 1
            elif line.msg.get("t") == "reply" and isinstance(line.msg.get("id"), int):
                self._replies[line.msg["id"]] = line.msg
            else:
                if line.msg.get("t") == "hello":
                    self.hello = line.msg
                self.events.append(line.msg)
            self._cv.notify_all()

    def write_raw(self, data: bytes) -> None:
        with self._wlock:
            self.port.write(data)
            if hasattr(self.port, "flush"):
                self.port.flush()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            self.port.close()
        self._reader.join(timeout=2)

    # ---- commands --------------------------------------------------------------------------------
    def command(self, cmd: str, timeout: float = 10.0, check: bool = True, **args: Any) -> dict[str, Any]:
        """Send one command and wait for its reply; ok:false raises BoardError when ``check``."""
        cid = next(self._ids) & 0xFFFFFFFF
        self.write_raw(wire.encode({"t": "cmd", "id": cid, "cmd": cmd, **args}))
        deadline = time.monotonic() + timeout
        with self._cv:
            while cid not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive:
                    why = "the port closed" if not self.alive else f"no reply within {timeout:.0f} s"
                    raise BoardError(f"{self.name}: `{cmd}` failed: {why}; is the firmware running? "
                                     "Try `yamflash monitor` to see its log.")
                self._cv.wait(min(left, 0.2))
            reply = self._replies.pop(cid)
        if check and not reply.get("ok", False):
            raise BoardError(f"{self.name}: `{cmd}` -> {reply.get('err')}: {reply.get('msg')}")
        return reply

    def ping(self, timeout: float = 5.0) -> bool:
        return bool(self.command("ping", timeout=timeout).get("ok"))

    def info(self) -> dict[str, Any]:
        return self.command("info")

    def source(self, src: str) -> dict[str, Any]:
        r = self.command("source", src=src)
        self._seq = {"pcm": 0, "patch": 0}
        return r

    def stream(self, scores: bool = False, patches: bool = False) -> dict[str, Any]:
        return self.command("stream", scores=scores, patches=patches)

    def detector(self, **cfg: Any) -> dict[str, Any]:
        return self.command("detector", **cfg)

    def bench(self, n: int = 10) -> dict[str, Any]:
        return self.command("bench", timeout=30 + n, n=n)

    def reset(self, timeout: float = 30.0) -> dict[str, Any]:
        """Reboot the board and wait for its new hello."""
        mark = len(self.events)
        self.command("reset")
        return self.wait_event(lambda e: e.get("t") == "hello", timeout, since=mark)

    # ---- events ----------------------------------------------------------------------------------
    def wait_event(self, pred: Callable[[dict[str, Any]], bool], timeout: float, since: int = 0) -> dict[str, Any]:
        """The first event from index ``since`` on that satisfies ``pred``; BoardError on timeout."""
        deadline = time.monotonic() + timeout
        with self._cv:
            i = since
            while True:
                while i < len(self.events):
                    if pred(self.events[i]):
                        return self.events[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive:
                    raise BoardError(f"{self.name}: expected event not seen within {timeout:.1f} s")
                self._cv.wait(min(left, 0.2))

    def of_type(self, t: str, since: int = 0) -> list[dict[str, Any]]:
        with self._cv:
            return [e for e in self.events[since:] if e.get("t") == t]

    def mark(self) -> int:
        with self._cv:
            return len(self.events)

    def wait_detection(self, label: str, within_s: float, since: int | None = None) -> dict[str, Any]:
        """The first `det` event for ``label`` (any case) within ``within_s`` seconds of wall time."""
        want = label.casefold()
        return self.wait_event(lambda e: e.get("t") == "det" and str(e.get("label")).casefold() == want, within_s,
                               since=self.mark() if since is None else since)

    # ---- data in, results out --------------------------------------------------------------------
    def send_pcm(self, pcm: np.ndarray, chunk: int = PCM_CHUNK, realtime: bool = False) -> None:
        """Push int16 samples; each chunk waits for its reply (re-sending what was not accepted)."""
        pcm = np.asarray(pcm, np.int16)
        t0 = time.monotonic()
        pos = 0
        while pos < len(pcm):
            part = pcm[pos : pos + chunk]
            r = self.command("pcm", seq=self._seq["pcm"], d=wire.b64(part.astype("<i2").tobytes()))
            self._seq["pcm"] = (self._seq["pcm"] + 1) & 0xFFFFFFFF
            accepted = int(r.get("accepted", len(part)))
            pos += accepted
            if realtime:
                ahead = pos / 16000.0 - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            elif accepted == 0:
                time.sleep(0.01)

    def infer_patch(self, patch_q: np.ndarray) -> np.ndarray:
        """One int8 [96, 64] patch in, the model's raw int8 output out (the board's interpreter)."""
        q = np.ascontiguousarray(np.asarray(patch_q, np.int8).reshape(-1))
        if q.size != protocol.PATCH_BYTES:
            raise UserError(f"a patch has {protocol.PATCH_BYTES} int8 values (96x64), got {q.size}")
        r = self.command("patch", timeout=30, seq=self._seq["patch"], q=wire.b64(q.tobytes()))
        self._seq["patch"] = (self._seq["patch"] + 1) & 0xFFFFFFFF
        return np.frombuffer(wire.unb64(r["q"]), np.int8).copy()

    def infer_pcm(self, pcm: np.ndarray, patches: bool = False, timeout: float | None = None,
                  realtime: bool = False) -> dict[str, np.ndarray]:
        """int16 PCM through the board's own frontend and model: per-patch int8 scores (and patches)."""
        self.source("host")
        self.stream(scores=True, patches=patches)
        mark = self.mark()
        self.send_pcm(pcm, realtime=realtime)
        n = count_patches(len(pcm))
        timeout = timeout if timeout is not None else 30.0 + n * 2.0
        if n:
            self.wait_event(lambda e: e.get("t") == "scores" and e.get("patch") == n - 1, timeout, since=mark)
        self.stream(scores=False, patches=False)
        out = {"scores": self._collect("scores", mark, n, 521)}
        if patches:
            out["patches"] = self._collect("patch", mark, n, protocol.PATCH_BYTES).reshape(n, 96, 64)
        return out

    def infer_wav(self, path: str | Path, patches: bool = False, realtime: bool = False) -> dict[str, np.ndarray]:
        from ..audio import load_audio

        return self.infer_pcm(to_pcm16(load_audio(path)), patches=patches, realtime=realtime)

    def _collect(self, t: str, since: int, n: int, width: int) -> np.ndarray:
        by_patch: dict[int, np.ndarray] = {}
        for e in self.of_type(t, since):
            by_patch[int(e["patch"])] = np.frombuffer(wire.unb64(e["q"]), np.int8)
        missing = [i for i in range(n) if i not in by_patch]
        if missing:
            more = "..." if len(missing) > 5 else ""
            raise BoardError(f"{self.name}: no `{t}` event for patches {missing[:5]}{more}")
        return np.stack([by_patch[i] for i in range(n)]) if n else np.zeros((0, width), np.int8)


def lines_of(events: Iterable[dict[str, Any]], t: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("t") == t]
