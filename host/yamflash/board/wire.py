"""Where the board client, the monitor and the virtual board meet the protocol codec (``yamflash.board.protocol``).

The codec (docs/protocol.md, shared vectors with yf_core's C) does the work; this adapter gives the
line-oriented tools one shape: bytes -> lines, each line a log line, a validated message, or a bad line
(with the failed reply a malformed-but-addressable command still deserves).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import protocol

PREFIX = protocol.PREFIX
MAX_LINE = protocol.MAX_LINE
encode = protocol.encode
b64 = protocol.b64encode
unb64 = protocol.b64decode


@dataclass
class Line:
    """``kind`` is "log", "msg" or "bad"; ``reply`` is the error reply owed to a bad but addressable command."""

    kind: str
    text: str = ""
    msg: dict[str, Any] = field(default_factory=dict)
    reply: dict[str, Any] | None = None


def classify(line: bytes, device: bool = False) -> Line:
    """One line (no newline): the device side accepts only commands, the host side only events."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line.startswith(PREFIX):
        return Line("log", line.decode("utf-8", "replace"))
    try:
        body = line[len(PREFIX):]
        msg = protocol.parse_command(body) if device else protocol.parse_json(body)
    except protocol.ProtocolError as exc:
        return Line("bad", str(exc), reply=protocol.error_reply(exc))
    if not device and msg.get("t") == "cmd":
        return Line("bad", "a command sent to the host")
    return Line("msg", msg=msg)


class Splitter:
    """protocol.LineSplitter with a running count of over-long lines, as bytes -> raw lines."""

    def __init__(self) -> None:
        self.inner = protocol.LineSplitter()
        self._long_seen = 0

    def feed(self, data: bytes) -> list[bytes]:
        return [ln.data for ln in self.inner.feed(data)]

    @property
    def overlong(self) -> int:
        return self.inner.long - self._long_seen

    @overlong.setter
    def overlong(self, value: int) -> None:
        self._long_seen = self.inner.long - value
