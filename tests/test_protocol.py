"""The protocol codec in Python (yamflash.board.protocol) and in C (yf_proto through yamflash.target.native) agree with
the shared vectors in tests/vectors/protocol and with each other, and never fail on garbage."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from yamflash.board import protocol as P

VECTORS = Path(__file__).parent / "vectors" / "protocol"


def load(name: str) -> list[dict[str, Any]]:
    return [json.loads(s) for s in (VECTORS / name).read_text(encoding="utf-8").splitlines() if s.strip()]


COMMANDS = load("commands.jsonl")
EVENTS = load("events.jsonl")
STREAMS = load("lines.jsonl")


def cmd_json(v: dict[str, Any]) -> bytes:
    return base64.b64decode(v["json_b64"]) if "json_b64" in v else v["json"].encode("utf-8")


def stream_bytes(parts: list[list[Any]]) -> list[bytes]:
    out = []
    for p in parts:
        if p[0] == "t":
            out.append(p[1].encode())
        elif p[0] == "x":
            out.append(p[1].encode() * p[2])
        else:
            out.append(base64.b64decode(p[1]))
    return out


def expected_lines(v: dict[str, Any]) -> list[tuple[str, bytes]]:
    return [("log", base64.b64decode(t)) if k == "log_b64" else (k, t.encode()) for k, t in v["lines"]]




def _subset_equal(got: dict[str, Any], want: dict[str, Any]) -> None:
    for k, v in want.items():
        assert k in got, k
        if isinstance(v, float) or k == "threshold":
            assert np.float32(got[k]) == np.float32(v), k  # C stores the threshold as float32
        else:
            assert got[k] == v, k


# ---------------------------------------------------------------- commands


@pytest.mark.parametrize("v", COMMANDS, ids=[c["name"] for c in COMMANDS])
def test_command_vector_python(v):
    raw = cmd_json(v)
    if v["expect"] == "ok":
        msg = P.parse_command(raw)
        _subset_equal(msg, v["msg"])
        assert P.parse(P.PREFIX + raw + b"\r\n") == msg
    else:
        with pytest.raises(P.ProtocolError) as info:
            P.parse_command(raw)
        want = "bad" if v["expect"] == "bad" else v["expect"]
        assert info.value.code == want
        if want != "bad":
            assert info.value.id == v["id"]
            rep = P.error_reply(info.value)
            assert rep is not None and rep["id"] == v["id"] and rep["err"] == want and rep["ok"] is False
        else:
            assert P.error_reply(info.value) is None


@pytest.mark.parametrize("v", COMMANDS, ids=[c["name"] for c in COMMANDS])
def test_command_vector_c(native, v):
    status, got = native.parse_cmd(cmd_json(v))
    want = {"ok": native.PARSE_OK, "bad": native.PARSE_BAD, "E_ARG": native.PARSE_ARG,
            "E_UNKNOWN_CMD": native.PARSE_UNKNOWN_CMD}[v["expect"]]
    assert status == want, got
    if v["expect"] == "ok":
        _subset_equal(got, v["msg"])
    elif v["expect"] != "bad":
        assert got["id"] == v["id"] and got["msg"]


def test_python_and_c_agree_on_mutated_commands(native):
    """Mutate valid command lines byte by byte (seeded): both decoders give the same verdict."""
    rng = random.Random(1234)
    seeds = [cmd_json(v) for v in COMMANDS if v["expect"] == "ok" and len(cmd_json(v)) < 400]
    alphabet = b'{}[]",:\\ 0123456789.-+eE\x00\x1f\x7f\xc3\xa9\xff tuvnrlsfa"'
    verdicts = {"ok": 0, "bad": 0, "err": 0}
    for _ in range(3000):
        s = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            op, i = rng.randrange(3), rng.randrange(len(s) + 1)
            if op == 0 and i < len(s):
                del s[i]
            elif op == 1:
                s.insert(i, rng.choice(alphabet))
            elif i < len(s):
                s[i] = rng.choice(alphabet)
        status, got = native.parse_cmd(bytes(s))
        try:
            msg = P.parse_command(bytes(s))
            py = native.PARSE_OK
        except P.ProtocolError as exc:
            py = {"bad": native.PARSE_BAD, "E_ARG": native.PARSE_ARG,
                  "E_UNKNOWN_CMD": native.PARSE_UNKNOWN_CMD}[exc.code]
            msg = {}
        assert status == py, bytes(s)
        if py == native.PARSE_OK:
            assert got["id"] == msg["id"] and got["cmd"] == msg["cmd"]
        verdicts["ok" if py == native.PARSE_OK else "bad" if py == native.PARSE_BAD else "err"] += 1
    assert min(verdicts.values()) > 50, verdicts  # the mutations exercise every verdict


# ---------------------------------------------------------------- events


@pytest.mark.parametrize("v", EVENTS, ids=[e["name"] for e in EVENTS])
def test_event_vector_python(v):
    if v["expect"] == "ok":
        msg = P.parse(v["line"])
        assert msg == v["msg"]
        if v.get("canonical"):
            assert P.encode(msg) == v["line"].encode() + b"\n"
    else:
        with pytest.raises(P.ProtocolError) as info:
            P.parse(v["line"])
        assert info.value.code == "bad"


@pytest.mark.parametrize("v", [e for e in EVENTS if e.get("canonical")], ids=lambda e: e["name"])
def test_event_vector_c_writer(native, v):
    assert native.encode_json(v["msg"]) == v["line"].encode() + b"\n"


def test_c_event_helpers_parse_in_python(native):
    import ctypes as C

    L = native.lib()
    buf = C.create_string_buffer(P.MAX_LINE + 1)
    cap = len(buf)

    def line(n: int) -> dict[str, Any]:
        assert n > 0
        return P.parse(buf.raw[:n])

    assert line(L.yf_proto_det(buf, cap, 494, b"Whistle", 0.75, 1455, 1)) == {
        "t": "det", "v": 1, "cls": 494, "label": "Whistle", "score": 0.75, "ts_ms": 1455, "patch": 1}
    assert line(L.yf_proto_timing(buf, cap, 3, 800, 150000, 160000))["e2e_us"] == 160000
    q = np.arange(-128, 393, dtype=np.int64).astype(np.int8)  # 521 scores
    msg = line(L.yf_proto_data(buf, cap, b"scores", 5, 6, q.ctypes.data, q.size))
    assert np.array_equal(P.int8_from_b64(msg["q"]), q)
    assert line(L.yf_proto_err(buf, cap, b"E_MODEL", b'no "model"\n'))["msg"] == 'no "model"\n'
    assert line(L.yf_proto_reply_err(buf, cap, 9, b"pcm", b"E_SEQ", b"gap"))["err"] == "E_SEQ"
    h = native.Hello(b"0.1.0", b"devkitc", b"ab" * 32, b"host", b"host", 123, 521, 0.1, 0.00390625, -3, -128,
                     1000, 900, b"internal", 5, 6)
    hello = line(L.yf_proto_hello(buf, cap, C.byref(h)))
    assert hello["frontend"] == {"sr": 16000, "win": 400, "hop": 160, "fft": 512, "mel": 64, "patch": 96,
                                 "patch_hop": 48, "log_offset": 0.001}
    assert np.float32(hello["input"]["scale"]) == np.float32(0.1) and hello["output"]["zp"] == -128
    names = (C.c_char_p * 2)(b"audio", b"infer")
    hwm = (C.c_uint32 * 2)(1200, 3000)
    s = native.Stats(1, 2, 3, 4, 5, 6, 7, 8, names, hwm, 2, 10, 9, b"psram")
    stats = line(L.yf_proto_stats(buf, cap, C.byref(s)))
    assert stats["stack_hwm"] == {"audio": 1200, "infer": 3000} and stats["arena"]["where"] == "psram"
    # A patch's worth of base64 does not fit a small buffer: the writer refuses, it does not truncate.
    assert L.yf_proto_data(buf, 100, b"patch", 0, 0, q.ctypes.data, q.size) == 0


def test_c_writer_refuses_lines_over_the_limit(native):
    assert native.encode_json({"t": "err", "code": "E", "msg": "x" * 12300}, cap=20000) == b""
    assert P.encode({"t": "err", "code": "E", "msg": "x" * 100})
    with pytest.raises(ValueError):
        P.encode({"t": "err", "code": "E", "msg": "x" * 12300})


def test_writer_escapes_control_characters(native):
    msg = {"t": "err", "code": "E", "msg": "a\x01b\tc\"\\é"}
    assert native.encode_json(msg) == P.encode(msg)
    assert P.parse(native.encode_json(msg))["msg"] == msg["msg"]


def test_writer_numbers_round_trip_float32(native):
    for x in (0.1, 1e-7, 123456.789, -3.5e20, 0.0):
        line = native.encode_json({"t": "det", "cls": 1, "label": "x", "score": float(np.float32(x)),
                                   "ts_ms": 1, "patch": 0})
        assert np.float32(P.parse(line)["score"]) == np.float32(x)
    assert b'"score":null' in native.encode_json({"t": "det", "score": float("nan")})


# ---------------------------------------------------------------- base64


def test_base64_python_and_c_agree(native):
    rng = np.random.default_rng(5)
    for n in range(0, 40):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        text = P.b64encode(data)
        assert text == native.b64encode(data) == base64.b64encode(data).decode()
        assert P.b64decode(text) == native.b64decode(text) == data
    for bad in ("A", "AA=", "AB==", "AAB=", "A===", "====", "AA==AA==", "AA AA", "AA\nA", "-_==", "AAAA="):
        with pytest.raises(ValueError):
            P.b64decode(bad)
        assert native.b64decode(bad) is None, bad
    assert native.b64decode("AAAA", cap=2) is None  # never writes past the caller's buffer


def test_pcm_payload_helpers():
    pcm = np.array([0, 1, -1, 32767, -32768], np.int16)
    text = P.pcm_to_b64(pcm)
    assert base64.b64decode(text) == b"\x00\x00\x01\x00\xff\xff\xff\x7f\x00\x80"  # little-endian
    assert np.array_equal(P.pcm_from_b64(text), pcm)


# ---------------------------------------------------------------- commands, ids, replies


def test_command_ids_wrap_and_match_replies():
    ids = P.CommandIds(start=P.UINT32_MAX)
    a = ids.command("ping")
    b = ids.command("pcm", seq=0, d=P.pcm_to_b64(np.zeros(4, np.int16)))
    assert (a["id"], b["id"]) == (P.UINT32_MAX, 0)
    assert P.parse(P.encode(a))["cmd"] == "ping" and P.parse(P.encode(b))["seq"] == 0
    assert ids.match(P.reply(b, accepted=4)) is b
    assert ids.match(P.reply(b)) is None  # answered once only
    assert ids.match({"t": "det"}) is None
    with pytest.raises(ValueError):
        ids.command("dance")


def test_ids_skip_pending_ones():
    ids = P.CommandIds(start=5)
    first = ids.command("ping")
    ids._next = 5  # wrapped all the way round while id 5 is still waiting
    assert ids.command("ping")["id"] == 6 and first["id"] == 5


# ---------------------------------------------------------------- line assembly


@pytest.mark.parametrize("v", STREAMS, ids=[s["name"] for s in STREAMS])
def test_stream_vector_python(v):
    sp = P.LineSplitter()
    got = [(ln.kind, ln.data) for part in stream_bytes(v["parts"]) for ln in sp.feed(part)]
    assert got == expected_lines(v)
    assert sp.counts == v["counts"]


@pytest.mark.parametrize("v", STREAMS, ids=[s["name"] for s in STREAMS])
def test_stream_vector_c(native, v):
    la = native.LineAssembler()
    got = [ln for part in stream_bytes(v["parts"]) for ln in la.feed(part)]
    assert got == expected_lines(v)
    assert la.counts == v["counts"]


def test_reader_counts_bad_lines_and_passes_logs():
    r = P.Reader()
    items = list(r.feed(b'boot log\n@yf {"t":"reply","v":1,"id":1,"cmd":"ping","ok":true}\n@yf {nope\n'
                        b'@yf {"t":"cmd","v":1,"id":3,"cmd":"dance"}\n'))
    assert [i.kind for i in items] == ["log", "msg", "bad", "bad"]
    assert items[1].msg["id"] == 1 and items[3].error is not None and items[3].error.code == "E_UNKNOWN_CMD"
    assert r.bad_lines == 1  # a command error is answered, not counted


def _random_stream(rng: random.Random) -> list[bytes]:
    """10,000 lines of every sort, cut into random chunks."""
    pieces = []
    for _ in range(10_000):
        kind = rng.random()
        if kind < 0.3:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(60))).replace(b"\n", b"")
            pieces.append(body)
        elif kind < 0.6:
            pieces.append(b'@yf {"t":"cmd","v":1,"id":%d,"cmd":"ping"}' % rng.randrange(1 << 32))
        elif kind < 0.9:
            good = b'{"t":"cmd","v":1,"id":1,"cmd":"source","src":"host"}'
            cut = rng.randrange(len(good))
            pieces.append(b"@yf " + good[:cut] + bytes([rng.randrange(256)]).replace(b"\n", b"") + good[cut + 1:])
        else:
            pieces.append(b"@yf " + b"z" * rng.choice([12283, 12284, 12290, 30000]))
    data = b"\n".join(p + (b"\r" if rng.random() < 0.2 else b"") for p in pieces) + b"\n"
    chunks, i = [], 0
    while i < len(data):
        n = rng.choice([1, 7, 64, 1000, 5000, 20000])
        chunks.append(data[i:i + n])
        i += n
    return chunks


def test_fuzz_both_assemblers_agree_and_count(native):
    rng = random.Random(20240601)
    chunks = _random_stream(rng)
    total = sum(c.count(b"\n") for c in chunks)
    py, c_asm, reader = P.LineSplitter(), native.LineAssembler(), P.Reader()
    py_lines, c_lines = [], []
    for chunk in chunks:
        py_lines += [(ln.kind, ln.data) for ln in py.feed(chunk)]
        c_lines += c_asm.feed(chunk)
        list(reader.feed(chunk))
    assert py_lines == c_lines
    assert py.counts == c_asm.counts
    counts = py.counts
    assert counts["proto"] + counts["log"] + counts["long"] == total  # every newline accounted for once
    assert counts["long"] > 500 and counts["proto"] > 5000
    bad_parse = 0
    for kind, data in py_lines:
        if kind != "proto":
            continue
        status, _ = native.parse_cmd(data[4:])
        if status == native.PARSE_BAD:
            c_asm.mark_bad()
            bad_parse += 1
        try:
            P.parse_command(data[4:])
        except P.ProtocolError as exc:
            if exc.code == "bad":
                py.mark_bad()
    assert bad_parse > 1000
    assert c_asm.counts["bad"] == py.counts["bad"] == counts["long"] + bad_parse
    assert reader.bad_lines == py.counts["bad"]
