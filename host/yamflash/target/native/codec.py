"""yf_core's protocol pieces through ctypes: line assembler, base64, command decoder, JSON writer, bench statistics."""

from __future__ import annotations

import ctypes as C
from typing import Any

import numpy as np

from .binding import (
    CMD_NAMES,
    LINE_PROTO,
    MAX_LINE,
    PARSE_BAD,
    PARSE_OK,
    PAYLOAD_MAX,
    SPEC,
    BenchSummary,
    Cmd,
    JsonWriter,
    LineAsm,
    LineOut,
    lib,
)


class LineAssembler:
    """yf_line_*: bytes in, ("proto" | "log", line bytes without newline) out; counters as on the device."""

    def __init__(self) -> None:
        self._lib = lib()
        self._a = LineAsm()
        self._lib.yf_line_init(C.byref(self._a))

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        buf = C.create_string_buffer(bytes(data), len(data))
        base = C.addressof(buf)
        pos, line = 0, LineOut()
        while pos < len(data):
            pos += self._lib.yf_line_feed(C.byref(self._a), C.c_void_p(base + pos), len(data) - pos, C.byref(line))
            if line.kind:
                out.append(("proto" if line.kind == LINE_PROTO else "log", C.string_at(line.text, line.len)))
        return out

    def mark_bad(self) -> None:
        self._lib.yf_line_bad(C.byref(self._a))

    @property
    def counts(self) -> dict[str, int]:
        a = self._a
        return {"proto": a.proto_lines, "log": a.log_lines, "long": a.long_lines, "bad": a.bad_lines}


def b64encode(data: bytes) -> str:
    out = C.create_string_buffer((len(data) + 2) // 3 * 4 + 1)
    n = lib().yf_b64_encode(data, len(data), out, len(out))
    return out.raw[:n].decode()


def b64decode(text: str | bytes, cap: int = 1 << 16) -> bytes | None:
    """Strict decode; None when the text is not canonical base64 or decodes to more than ``cap`` bytes."""
    raw = text.encode() if isinstance(text, str) else text
    out = C.create_string_buffer(max(cap, 1))
    n = C.c_size_t(0)
    if lib().yf_b64_decode(raw, len(raw), out, cap, C.byref(n)) != 0:
        return None
    return out.raw[: n.value]


def parse_cmd(json_text: bytes) -> tuple[int, dict[str, Any]]:
    """yf_proto_parse_cmd on the JSON of one line: (PARSE_* status, the command's fields as a dict).

    The dict holds what the device would act on: envelope fields, and the arguments present (payloads
    re-encoded as base64), so it compares directly with host/yamflash/board/protocol.py's parse.
    """
    cmd = Cmd()
    payload = C.create_string_buffer(PAYLOAD_MAX)
    status = lib().yf_proto_parse_cmd(json_text, len(json_text), C.byref(cmd), payload, PAYLOAD_MAX)
    if status == PARSE_BAD:
        return status, {}
    d: dict[str, Any] = {"t": "cmd", "v": 1, "id": cmd.id, "cmd": cmd.name.decode()}
    if status != PARSE_OK:
        d["msg"] = (cmd.err_msg or b"").decode()
        return status, d
    for a in SPEC.args(CMD_NAMES[cmd.kind]):
        if not (cmd.present & a.bit) and a.type != "bool":  # absent flags read as false, as the device acts
            continue
        v = getattr(cmd, a.field)
        if a.type == "enum":
            d[a.name] = a.values[v]
        elif a.type == "b64":
            d[a.name] = b64encode(C.string_at(cmd.data, cmd.data_len))
        elif a.type == "int_array":
            d[a.name] = [int(c) for c in v[: getattr(cmd, a.count_field)]]
        elif a.type == "num":
            d[a.name] = float(v)
        elif a.type == "bool":
            d[a.name] = bool(v)
        else:
            d[a.name] = int(v)
    return status, d


def encode_json(msg: dict[str, Any], cap: int = MAX_LINE + 1) -> bytes:
    """Drive the C JSON writer (yf_jw_*) with a message dict; the line it writes, or b"" if it refused."""
    L = lib()
    buf = C.create_string_buffer(cap)
    w = JsonWriter()
    L.yf_jw_begin(C.byref(w), buf, cap, str(msg["t"]).encode())

    for k, v in msg.items():
        if k not in ("t", "v"):
            _jw_put(L, C.byref(w), k.encode(), v)
    n = L.yf_jw_end(C.byref(w))
    return buf.raw[:n]


def bench_summary(us: list[int]) -> dict[str, float]:
    arr = (C.c_uint32 * max(len(us), 1))(*us)
    s = BenchSummary()
    lib().yf_bench_summarize(arr, len(us), C.byref(s))
    return {k: getattr(s, k) for k in ("n", "mean", "std", "min", "max", "p50", "p90", "p99")}

def _jw_put(L: C.CDLL, w: Any, key: bytes | None, v: Any) -> None:
    """One member (or array element) through the C JSON writer."""
    if isinstance(v, bool):
        L.yf_jw_bool(w, key, v)
    elif isinstance(v, (int, np.integer)):
        (L.yf_jw_int if v < 0 else L.yf_jw_uint)(w, key, int(v))
    elif isinstance(v, (float, np.floating)):
        L.yf_jw_num(w, key, float(v))
    elif isinstance(v, str):
        L.yf_jw_str(w, key, v.encode())
    elif isinstance(v, dict):
        L.yf_jw_obj(w, key)
        for k, x in v.items():
            _jw_put(L, w, str(k).encode(), x)
        L.yf_jw_close(w)
    elif isinstance(v, (list, tuple)):
        L.yf_jw_arr(w, key)
        for x in v:
            _jw_put(L, w, None, x)
        L.yf_jw_close(w)
    else:
        raise TypeError(f"cannot encode {type(v).__name__}")
