"""The serial protocol of docs/protocol.md (version 1), host side: the Python mirror of yf_core's yf_proto.

One port carries ESP-IDF's logs and ``@yf {json}`` lines. This module splits a byte stream into lines
(over-long ones counted and skipped), parses and validates protocol lines, encodes messages, builds
commands with ids and matches replies to them. It accepts and rejects exactly what the C decoder does;
both run the vectors in ``tests/vectors/protocol``. Its limits, command/argument rules, event fields and
error codes are not written here: they come from ``protocol_spec.json`` (``yamflash.protocol_spec``), as the
C side's do.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..protocol_spec import UINT32_MAX, Arg
from ..protocol_spec import load as _load_spec

SPEC = _load_spec()
PREFIX = SPEC.prefix.encode()
VERSION = SPEC.version
MAX_LINE = SPEC.const("MAX_LINE")  # bytes, prefix and newline included
MAX_TOKENS = SPEC.const("MAX_TOKENS")  # keys + values in one command (C parses into a fixed token array)
MAX_DEPTH = SPEC.const("MAX_DEPTH")  # nesting in a command
MAX_NUMBER = SPEC.const("MAX_NUMBER")  # characters in one JSON number
MAX_PCM_SAMPLES = SPEC.const("MAX_PCM_SAMPLES")
PATCH_BYTES = SPEC.const("PATCH_BYTES")
MAX_CLASSES = SPEC.const("MAX_CLASSES")

COMMANDS = SPEC.commands
ERROR_CODES = tuple(SPEC.errors)

BAD = "bad"  # ProtocolError.code of a line that is counted and skipped


class ProtocolError(ValueError):
    """A line the protocol rejects. ``code`` is ``"bad"`` (count and skip), or ``E_UNKNOWN_CMD``/``E_ARG``
    for a command whose envelope parsed: then ``id`` and ``cmd`` say whom to reply to."""

    def __init__(self, code: str, message: str, id: int | None = None, cmd: str | None = None):
        super().__init__(message)
        self.code, self.id, self.cmd = code, id, cmd


def _bad(message: str) -> ProtocolError:
    return ProtocolError(BAD, message)


# ---------------------------------------------------------------- base64 payloads

_B64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def b64encode(data: bytes | bytearray | memoryview | np.ndarray) -> str:
    """Standard padded base64 of raw bytes (an array is sent as its bytes, little-endian as stored)."""
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    return base64.b64encode(raw).decode("ascii")


def b64decode(text: str) -> bytes:
    """Strict base64 (padded, zero spare bits: one text per byte string); ValueError otherwise."""
    if not isinstance(text, str) or len(text) % 4 or not _B64_RE.fullmatch(text):
        raise ValueError("not canonical base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64: {exc}") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("base64 with non-zero spare bits")
    return raw


def pcm_to_b64(pcm: np.ndarray) -> str:
    """int16 mono samples as base64 of little-endian bytes (the `pcm` command's `d`)."""
    return b64encode(np.ascontiguousarray(pcm, "<i2"))


def pcm_from_b64(text: str) -> np.ndarray:
    return np.frombuffer(b64decode(text), "<i2").astype(np.int16)


def int8_to_b64(q: np.ndarray) -> str:
    """int8 values (a patch or the model's scores) as base64."""
    return b64encode(np.ascontiguousarray(q, np.int8))


def int8_from_b64(text: str) -> np.ndarray:
    return np.frombuffer(b64decode(text), np.int8).copy()


# ---------------------------------------------------------------- JSON as the C decoder reads it


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise ValueError("duplicate key")
    return d


def _number(kind: type) -> Any:
    def convert(text: str) -> Any:
        if len(text) > MAX_NUMBER:
            raise ValueError("number too long")
        return kind(text)

    return convert


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads(raw: bytes) -> Any:
    text = raw.decode("utf-8")  # strict: invalid UTF-8 is a bad line, as in C
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_number(int),
                      parse_float=_number(float), parse_constant=_constant)


def _depth(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


def _tokens(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + sum(1 + _tokens(x) for x in v.values())
    if isinstance(v, list):
        return 1 + sum(_tokens(x) for x in v)
    return 1


def _is_int(v: Any, lo: int = -(1 << 63), hi: int = (1 << 63) - 1) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ---------------------------------------------------------------- validation

# Event fields and their kinds: "int", "num", "str", "bool", "dict", "list", "b64".
EVENTS: dict[str, dict[str, str]] = SPEC.events
OPTIONAL: dict[str, dict[str, str]] = SPEC.optional_fields  # checked when present (older boards lack them)


def _kind_ok(kind: str, v: Any) -> bool:
    if kind == "int":
        return _is_int(v)
    if kind == "num":
        return _is_num(v)
    if kind == "b64":
        try:
            b64decode(v)
        except ValueError:
            return False
        return True
    return isinstance(v, {"str": str, "bool": bool, "dict": dict, "list": list}[kind])


def _check_event(msg: dict[str, Any]) -> None:
    for key, kind in EVENTS[msg["t"]].items():
        if key not in msg or not _kind_ok(kind, msg[key]):
            raise _bad(f"{msg['t']}: field {key!r} missing or not {kind}")
    for key, kind in OPTIONAL[msg["t"]].items():
        if key in msg and not _kind_ok(kind, msg[key]):
            raise _bad(f"{msg['t']}: field {key!r} not {kind}")
    if msg["t"] == "reply":
        if not _is_int(msg["id"], 0, UINT32_MAX):
            raise _bad("reply: id must be a uint32")
        if not msg["ok"] and not (isinstance(msg.get("err"), str) and isinstance(msg.get("msg"), str)):
            raise _bad("reply: a failed reply needs err and msg strings")


def _arg_ok(a: Arg, v: Any) -> bool:
    """One argument against its row of the spec (yf_proto.c take_arg's rules)."""
    if a.type == "enum":
        return isinstance(v, str) and v in a.values
    if a.type in ("uint32", "int"):
        return _is_int(v, int(a.lo), int(a.hi))
    if a.type == "num":
        return _is_num(v) and a.lo <= v <= a.hi
    if a.type == "bool":
        return isinstance(v, bool)
    if a.type == "b64":
        try:
            n = len(b64decode(v))
        except ValueError:
            return False
        return n % a.item_bytes == 0 and a.lo * a.item_bytes <= n <= a.hi * a.item_bytes
    return isinstance(v, list) and len(v) <= a.max_len and all(_is_int(x, int(a.lo), int(a.hi)) for x in v)


def _check_args(msg: dict[str, Any]) -> None:
    """Arguments of a known command, walked in the spec's order as the C decoder walks them (first failure)."""
    for a in SPEC.args(msg["cmd"]):
        if a.name not in msg:
            if a.required:
                raise ProtocolError("E_ARG", a.message, msg["id"], msg["cmd"])
            continue
        if not _arg_ok(a, msg[a.name]):
            raise ProtocolError("E_ARG", a.message, msg["id"], msg["cmd"])
        if a.type == "num":
            msg[a.name] = float(msg[a.name]) + 0.0  # a number, as C reads it; -0 and -0.0 become 0.0


def parse_json(raw: bytes | str) -> dict[str, Any]:
    """Validate the JSON of one protocol line (after the prefix) and return it as a dict.

    Raises ProtocolError: code ``"bad"`` for a line to count and skip; ``E_UNKNOWN_CMD``/``E_ARG`` for a
    command that deserves a failed reply (its ``id`` and ``cmd`` are on the error).
    """
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(data) > MAX_LINE:  # yf_proto_parse_cmd's limit: no longer JSON than a whole line may hold
        raise _bad("longer than the protocol allows")
    try:
        msg = _loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _bad(f"not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise _bad("not a JSON object")
    t = msg.get("t")
    if not isinstance(t, str) or not _is_int(msg.get("v")) or msg["v"] != VERSION:
        raise _bad(f'needs "t" (string) and "v" = {VERSION}')
    if t == "cmd":
        if _depth(msg) > MAX_DEPTH or _tokens(msg) > MAX_TOKENS:
            raise _bad(f"command nested deeper than {MAX_DEPTH} or longer than {MAX_TOKENS} tokens")
        if not _is_int(msg.get("id"), 0, UINT32_MAX) or not isinstance(msg.get("cmd"), str):
            raise _bad("cmd needs id (uint32) and cmd (string)")
        if msg["cmd"] not in COMMANDS:
            raise ProtocolError("E_UNKNOWN_CMD", f"unknown command {msg['cmd']!r}", msg["id"], msg["cmd"])
        _check_args(msg)
        return msg
    if t not in EVENTS:
        raise _bad(f"unknown message type {t!r}")
    _check_event(msg)
    return msg


def parse_command(raw: bytes | str) -> dict[str, Any]:
    """parse_json for the device side (the virtual board): anything but a command is a bad line."""
    msg = parse_json(raw)
    if msg["t"] != "cmd":
        raise _bad(f"a {msg['t']!r} message is not a command")
    return msg


def parse(line: bytes | str) -> dict[str, Any]:
    """Parse one whole protocol line (``@yf {...}``, newline optional) into a validated message dict."""
    raw = line.encode("utf-8") if isinstance(line, str) else bytes(line)
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if not raw.startswith(PREFIX):
        raise _bad("no @yf prefix")
    if len(raw) + 1 > MAX_LINE:
        raise _bad("line longer than the protocol allows")
    return parse_json(raw[len(PREFIX):])


def encode(msg: dict[str, Any]) -> bytes:
    """One protocol line, prefix and newline included; ``t`` first, ``v`` filled in.

    Raises ValueError when the line would exceed MAX_LINE or holds a value JSON cannot carry.
    """
    if not isinstance(msg.get("t"), str):
        raise ValueError('a message needs a string "t"')
    body = {"t": msg["t"], "v": VERSION, **{k: v for k, v in msg.items() if k not in ("t", "v")}}
    line = PREFIX + json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode() + b"\n"
    if len(line) > MAX_LINE:
        raise ValueError(f"message of {len(line)} bytes exceeds the {MAX_LINE}-byte line limit")
    return line


# ---------------------------------------------------------------- commands, ids and replies


class CommandIds:
    """Command ids: uint32, wrapping, never reused while a reply is pending."""

    def __init__(self, start: int = 1):
        self._next = start & UINT32_MAX
        self.pending: dict[int, dict[str, Any]] = {}

    def command(self, name: str, **args: Any) -> dict[str, Any]:
        """A new command message with a fresh id, remembered until its reply arrives."""
        if name not in COMMANDS:
            raise ValueError(f"unknown command {name!r}; one of {', '.join(COMMANDS)}")
        while self._next in self.pending:
            self._next = (self._next + 1) & UINT32_MAX
        cid = self._next
        self._next = (self._next + 1) & UINT32_MAX
        msg = {"t": "cmd", "v": VERSION, "id": cid, "cmd": name, **args}
        self.pending[cid] = msg
        return msg

    def match(self, reply: dict[str, Any]) -> dict[str, Any] | None:
        """The command a reply answers (and forget it), or None for a reply to nothing we sent."""
        if reply.get("t") != "reply":
            return None
        return self.pending.pop(reply.get("id"), None)  # type: ignore[arg-type]


def reply(cmd: dict[str, Any], ok: bool = True, **fields: Any) -> dict[str, Any]:
    """A reply to a command message (the device side, as the virtual board sends it)."""
    return {"t": "reply", "v": VERSION, "id": cmd["id"], "cmd": cmd["cmd"], "ok": ok, **fields}


def error_reply(err: ProtocolError) -> dict[str, Any] | None:
    """The failed reply a ProtocolError calls for, or None for a bad line (nobody to reply to)."""
    if err.code == BAD or err.id is None:
        return None
    return {"t": "reply", "v": VERSION, "id": err.id, "cmd": err.cmd or "", "ok": False, "err": err.code,
            "msg": str(err)}


# ---------------------------------------------------------------- byte stream -> lines


@dataclass
class Line:
    """A complete line without newline (and without a trailing CR): ``kind`` is "proto" or "log"."""

    kind: str
    data: bytes

    @property
    def json(self) -> bytes:
        return self.data[len(PREFIX):]


@dataclass
class LineSplitter:
    """Bytes in, lines out, as yf_line_feed: a line longer than MAX_LINE (newline included) is dropped up
    to its newline and counted in ``long`` and ``bad``; nothing ever raises."""

    buf: bytearray = field(default_factory=bytearray)
    discarding: bool = False
    proto: int = 0
    log: int = 0
    long: int = 0
    bad: int = 0

    def feed(self, data: bytes) -> list[Line]:
        out: list[Line] = []
        start = 0
        while start < len(data):
            nl = data.find(b"\n", start)
            chunk = data[start:] if nl < 0 else data[start:nl]
            if not self.discarding:
                room = MAX_LINE - 1 - len(self.buf)
                if len(chunk) > room:
                    self.discarding = True
                    self.buf.clear()
                    self.long += 1
                    self.bad += 1
                else:
                    self.buf += chunk
            if nl < 0:
                break
            start = nl + 1
            if self.discarding:
                self.discarding = False
                continue
            line = bytes(self.buf)
            self.buf.clear()
            if line.endswith(b"\r"):
                line = line[:-1]
            if line.startswith(PREFIX):
                self.proto += 1
                out.append(Line("proto", line))
            else:
                self.log += 1
                out.append(Line("log", line))
        return out

    def mark_bad(self) -> None:
        """Count a protocol line that did not parse."""
        self.bad += 1

    @property
    def counts(self) -> dict[str, int]:
        return {"proto": self.proto, "log": self.log, "long": self.long, "bad": self.bad}


@dataclass
class Item:
    """What a Reader yields: a log line, a parsed message, or a rejected protocol line."""

    kind: str  # "log" | "msg" | "bad"
    text: str = ""
    msg: dict[str, Any] = field(default_factory=dict)
    error: ProtocolError | None = None


class Reader:
    """Splitter + parser: bytes in, log lines and validated messages out, bad lines counted."""

    def __init__(self) -> None:
        self.lines = LineSplitter()

    def feed(self, data: bytes) -> Iterator[Item]:
        for line in self.lines.feed(data):
            if line.kind == "log":
                yield Item("log", line.data.decode("utf-8", "replace"))
                continue
            try:
                yield Item("msg", msg=parse_json(line.json))
            except ProtocolError as exc:
                if exc.code == BAD:
                    self.lines.mark_bad()
                yield Item("bad", line.data.decode("utf-8", "replace"), error=exc)

    @property
    def bad_lines(self) -> int:
        return self.lines.bad
