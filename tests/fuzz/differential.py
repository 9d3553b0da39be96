"""C vs Python differential fuzzing of the serial protocol's decoders (issue 12).

The firmware decodes commands with yf_core's C (yf_proto.c); the host, the virtual board and the tests with
host/yamflash/board/protocol.py, which promises to accept and reject exactly what the C does. This harness holds it
to that on inputs nobody wrote by hand, for a bounded time:

- command JSON: verdict (ok / bad / E_ARG / E_UNKNOWN_CMD) and, when accepted, every field the device acts on
  (a threshold as the float32 the chip stores, sign of zero included); for a failed reply, its id;
- byte streams: the lines, their kinds and the counters of the line assembler (yf_line_feed vs LineSplitter),
  fed in random chunks;
- base64 payloads: strict decoding, accepted or refused alike, same bytes;
- events the C writer writes (err, det with any text and score): Python reads back the same values, and for
  events without floats C writes the very bytes Python's encoder writes; both refuse over-long lines.

Inputs: the seed corpus (tests/fuzz/corpus), the corpus libFuzzer grew (build/fuzz/corpus, when present),
their random mutations, and commands generated field by field with values at and beyond every limit.
A disagreement is written to build/fuzz/disagreements/ and fails the run (exit 1).

    python tests/fuzz/differential.py --seconds 30 [--seed N] [--json OUT]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "tests" / "fuzz" / "corpus"
GROWN = ROOT / "build" / "fuzz" / "corpus"
OUT = ROOT / "build" / "fuzz" / "disagreements"

TOKENS = [b'"t":"cmd"', b'"v":1', b'"id":', b'"cmd":', b'"ping"', b'"detector"', b'"pcm"', b'"patch"', b'"seq":',
          b'"threshold":', b'"classes":', b"-0", b"1e999", b"4294967296", b"\\u0000", b"\\ud800", b"\xc3\xa9",
          b"\xed\xa0\x80", b"\xff", b"true", b"null", b"[", b"]", b"{", b"}", b",", b":", b'"', b"\\", b" ", b"\t"]


def load_corpus(dirs: list[Path]) -> list[bytes]:
    out = []
    for d in dirs:
        if d.is_dir():
            out += [p.read_bytes() for p in sorted(d.iterdir()) if p.is_file() and p.stat().st_size <= 65536]
    return out or [b'@yf {"t":"cmd","v":1,"id":1,"cmd":"ping"}\n']


def mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    s = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(s) + 1)
        op = rng.randrange(7)
        if op == 0 and s:
            s[rng.randrange(len(s))] ^= 1 << rng.randrange(8)
        elif op == 1 and s:
            s[rng.randrange(len(s))] = rng.choice(b'{}[]",:\\-.0123456789eE\x00\x1f\x7f\xc3\xed\xff \n\r')
        elif op == 2 and i < len(s):
            del s[i : i + rng.randint(1, 16)]
        elif op == 3:
            s[i:i] = rng.choice(TOKENS)
        elif op == 4:
            o = rng.choice(corpus)
            a = rng.randrange(len(o) + 1)
            s[i:i] = o[a : a + rng.randint(0, 64)]
        elif op == 5 and i < len(s):
            n = rng.randint(1, 32)
            s[i:i] = s[i : i + n] * rng.randint(1, 400)  # long lines, many tokens, deep nesting
        else:
            s[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(s)


# ---- commands generated field by field -------------------------------------------------------------------------
INTS = [0, 1, 2, 31, 32, 33, 127, 128, 255, 256, 65535, 65536, 86400000, 86400001, 10000, 10001, 4294967295,
        4294967296, -1, -0, 2**63 - 1, 2**63, 2**64]


def _num_text(rng: random.Random) -> str:
    return rng.choice([
        str(rng.choice(INTS)), "-0", "-0.0", "0.0", "1.0", "1", "0.5", "1e0", "1E-0", "-0e5", "0.99999999999",
        "1.00000001", "1e-320", "5e-324", "1e999", "-1e999", "0." + "0" * 70 + "1", "1" * 70, "01", "1.", ".5",
        "+1", "0x10", "NaN", "Infinity", "-", "1e", f"{rng.random():.17g}", f"{rng.uniform(-2, 2):.9g}",
    ])


def _str_text(rng: random.Random) -> str:
    return rng.choice([
        '"ping"', '"detector"', '"mic"', '"host"', '"MIC"', '""', '"\\u0070ing"', '"p\\u0000"', '"\\ud800"',
        '"\\ud83d\\ude00"', '"' + "x" * rng.randint(20, 30) + '"', '"\xc3\xa9"', '"tab\\there"', '"\\/"',
    ])


def _b64_text(rng: random.Random) -> str:
    n = rng.choice([0, 1, 2, 3, 4, 6, 7, 100, 6143, 6144, 6145, 8190, 8192, 8193, rng.randint(0, 9000)])
    raw = bytes(rng.randrange(256) for _ in range(n))
    t = base64.b64encode(raw).decode()
    r = rng.random()
    if r < 0.1 and t:
        t = t.rstrip("=")
    elif r < 0.2 and t.endswith("=="):
        t = t[:-3] + rng.choice("BCDEFGHIJ") + "=="  # non-zero spare bits
    elif r < 0.25:
        t = t + "\\n"
    return '"' + t + '"'


def _valid(rng: random.Random, key: str) -> str:
    """A value the command accepts, at and near its limits (so that commands pass and their fields compare)."""
    if key == "src":
        return rng.choice(['"mic"', '"host"', '"\\u006dic"'])
    if key in ("d", "q"):
        n = 6144 if key == "q" else 2 * rng.choice([1, 2, 4095, 4096, rng.randint(1, 4096)])
        return '"' + base64.b64encode(rng.randbytes(n)).decode() + '"'
    if key in ("scores", "patches"):
        return rng.choice(["true", "false"])
    if key == "classes":
        return "[" + ",".join(str(rng.choice([0, 1, 520, 65535, rng.randrange(65536)]))
                              for _ in range(rng.choice([0, 1, 32, rng.randint(0, 32)]))) + "]"
    if key == "threshold":
        return rng.choice(["-0", "-0.0", "-0e5", "0", "0.0", "1", "1.0", "0.5", "1e-320", "5e-324", "0.999999999999",
                           "1.0000000000000001", "1E0", f"{rng.random():.17g}", f"{rng.random():.3e}"])
    lo, hi = {"seq": (0, 2**32 - 1), "window": (1, 32), "min_count": (1, 65535), "refractory_ms": (0, 86400000),
              "n": (1, 10000)}.get(key, (0, 2**32 - 1))
    return str(rng.choice([lo, hi, rng.randint(lo, hi)]))


def _value(rng: random.Random, key: str) -> str:
    if rng.random() < 0.7:
        return _valid(rng, key)
    r = rng.random()
    if r < 0.08:
        return rng.choice(["true", "false", "null", "[]", "{}", _str_text(rng)])
    if key in ("d", "q"):
        return _b64_text(rng)
    if key == "src":
        return _str_text(rng)
    if key in ("scores", "patches"):
        return rng.choice(["true", "false", "0", "1"])
    if key == "classes":
        n = rng.choice([0, 1, 2, 31, 32, 33, rng.randint(0, 40)])
        return "[" + ",".join(_num_text(rng) if rng.random() < 0.2 else str(rng.choice([0, 1, 520, 65535, 65536]))
                              for _ in range(n)) + "]"
    if key == "threshold":
        return _num_text(rng)
    return _num_text(rng) if rng.random() < 0.5 else str(rng.choice(INTS))


ARGS = {"source": ["src"], "pcm": ["seq", "d"], "patch": ["seq", "q"], "stream": ["scores", "patches"],
        "detector": ["classes", "threshold", "window", "min_count", "refractory_ms"], "bench": ["n"],
        "ping": [], "info": [], "reset": []}


def generate(rng: random.Random) -> bytes:
    cmd = rng.choice([*ARGS, "nope", "PING", ""])
    members = [('"t"', '"cmd"'), ('"v"', "1"), ('"id"', str(rng.choice(INTS[:18]))), ('"cmd"', f'"{cmd}"')]
    for key in ARGS.get(cmd, []):
        if rng.random() < 0.8:
            members.append((f'"{key}"', _value(rng, key)))
    if rng.random() < 0.2:
        members.append((rng.choice(['"extra"', '"id"', '"t"', '"v"', '"\\u0074"']), _value(rng, "x")))
    if rng.random() < 0.15:
        i = rng.randrange(len(members))
        members[i] = (members[i][0], rng.choice(['"1"', "2", "1.0", "-1", "4294967296", "[1]", _num_text(rng)]))
    rng.shuffle(members)
    ws = rng.choice(["", " ", "\t", "\r\n"]) if rng.random() < 0.3 else ""
    return ("{" + ws + ("," + ws).join(f"{k}{ws}:{ws}{v}" for k, v in members) + ws + "}").encode("utf-8")


# ---- the comparisons ------------------------------------------------------------------------------------------
def compare_command(data: bytes) -> str | None:
    """None when C and Python agree on one line's JSON, else what differs."""
    from yamflash.board import protocol as P
    from yamflash.target import native

    status, c = native.parse_cmd(data)
    try:
        msg = P.parse_command(data)
        py, err = native.PARSE_OK, None
    except P.ProtocolError as exc:
        py = {"bad": native.PARSE_BAD, "E_ARG": native.PARSE_ARG, "E_UNKNOWN_CMD": native.PARSE_UNKNOWN_CMD}[exc.code]
        msg, err = {}, exc
    if status != py:
        return f"verdict: C {status}, Python {py} ({err})"
    if py == native.PARSE_BAD:
        return None
    if py != native.PARSE_OK:
        return None if c["id"] == err.id else f"failed reply id: C {c['id']}, Python {err.id}"  # type: ignore[union-attr]
    if (c["id"], c["cmd"]) != (msg["id"], msg["cmd"]):
        return f"envelope: C {c['id']} {c['cmd']!r}, Python {msg['id']} {msg['cmd']!r}"
    name = msg["cmd"]
    if name == "source" and c["src"] != msg["src"]:
        return f"src: C {c['src']}, Python {msg['src']}"
    if name in ("pcm", "patch"):
        key = "d" if name == "pcm" else "q"
        if c["seq"] != msg["seq"] or c[key] != msg[key]:
            return f"{name} payload or seq differs"
    if name == "stream":
        for key in ("scores", "patches"):
            if c[key] != msg.get(key, False):
                return f"stream {key}: C {c[key]}, Python {msg.get(key)}"
    if name == "detector":
        for key in ("classes", "threshold", "window", "min_count", "refractory_ms"):
            if (key in c) != (key in msg):
                return f"detector {key}: present in {'C' if key in c else 'Python'} only"
            if key not in c:
                continue
            if key == "threshold":
                want = float(np.float32(msg[key]))  # what the chip stores
                if c[key] != want or math.copysign(1, c[key]) != math.copysign(1, want):
                    return f"threshold: C {c[key]!r}, Python {msg[key]!r}"
            elif c[key] != msg[key]:
                return f"detector {key}: C {c[key]}, Python {msg[key]}"
    if name == "bench" and c.get("n") != msg.get("n"):
        return f"bench n: C {c.get('n')}, Python {msg.get('n')}"
    return None


def compare_stream(rng: random.Random, data: bytes) -> str | None:
    """The line assemblers on the same bytes in different random chunkings."""
    from yamflash.board import protocol as P
    from yamflash.target import native

    c, py = native.LineAssembler(), P.LineSplitter()
    c_lines: list[tuple[str, bytes]] = []
    py_lines: list[tuple[str, bytes]] = []
    i = 0
    while i < len(data):
        n = rng.choice([1, 2, 7, 64, 4096, len(data)])
        c_lines += c.feed(data[i : i + n])
        i += n
    i = 0
    while i < len(data):
        n = rng.choice([1, 3, 97, 65536])
        py_lines += [(ln.kind, ln.data) for ln in py.feed(data[i : i + n])]
        i += n
    if c_lines != py_lines:
        k = next((j for j, (a, b) in enumerate(zip(c_lines, py_lines, strict=False)) if a != b),
                 min(len(c_lines), len(py_lines)))
        return f"lines differ at line {k} (C {len(c_lines)} lines, Python {len(py_lines)})"
    cc, pc = c.counts, py.counts
    for key in ("proto", "log", "long"):
        if cc[key] != pc[key]:
            return f"counter {key}: C {cc[key]}, Python {pc[key]}"
    return None


def compare_b64(data: bytes) -> str | None:
    from yamflash.board import protocol as P
    from yamflash.target import native

    c = native.b64decode(data)
    try:
        py: bytes | None = P.b64decode(data.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        py = None
    if c == py:
        return None
    return f"base64: C {None if c is None else len(c)} bytes, Python {None if py is None else len(py)}"


def _text(rng: random.Random) -> str:
    # no NUL: the chip's labels and messages are C strings, which end at one
    pool = ['"', "\\", "/", "\n", "\r", "\t", "\x01", "\x1f", "\x7f", "\u2028", "\ufeff", "é", "\U0001f600", "a", " ",
            "@yf ", "{", "}"]
    n = rng.choice([0, 1, 5, 40, rng.randint(0, 3000), rng.randint(12200, 12300) // rng.choice([1, 2, 6])])
    return "".join(rng.choice(pool) if rng.random() < 0.5 else chr(rng.randrange(32, 127)) for _ in range(n))


def compare_writer(rng: random.Random) -> tuple[bytes, str | None]:
    """C writes an event (yf_jw_*), Python reads it: the same values come back, and where no float is involved,
    the very bytes Python's encoder writes (both refuse a line over the limit)."""
    from yamflash.board import protocol as P
    from yamflash.target import native

    if rng.random() < 0.5:
        msg: dict[str, Any] = {"t": "err", "code": rng.choice(["E_ARG", "E_MODEL", _text(rng)[:20]]),
                               "msg": _text(rng)}
    else:
        score = rng.choice([0.0, 1.0, 0.5, rng.random(), rng.uniform(-1e30, 1e30), 1e-310,
                            float(np.float32(rng.random()))])
        msg = {"t": "det", "cls": rng.randrange(65536), "label": _text(rng)[:300], "score": score,
               "ts_ms": rng.randrange(2**32), "patch": rng.randrange(2**32)}
    c = native.encode_json(msg)
    try:
        py = P.encode(msg)
    except ValueError:
        py = b""
    data = json.dumps(msg).encode()
    if (c == b"") != (py == b""):
        return data, f"writer refusal: C {len(c) or 'refused'}, Python {len(py) or 'refused'}"
    if c == b"":
        return data, None
    if msg["t"] == "err":
        return data, None if c == py else "writer bytes differ"
    try:
        back = P.parse(c)
    except P.ProtocolError as exc:
        return data, f"writer: Python cannot read C's line ({exc})"
    want = {**msg, "v": 1, "score": float(f"{msg['score']:.9g}")}
    return data, None if back == want else f"writer values: {back} vs {want}"


def _record(stats: dict[str, int], kinds: dict[str, int], what: str, data: bytes, problem: str,
            say: Callable[[str], None], out: Path = OUT) -> None:
    stats["disagreements"] += 1
    kind = problem.split(":")[0]
    kinds[kind] = kinds.get(kind, 0) + 1
    out.mkdir(parents=True, exist_ok=True)
    f = out / f"{what}-{hashlib.sha1(data).hexdigest()[:16]}.bin"
    f.write_bytes(data)
    if stats["disagreements"] <= 5:
        say(f"DISAGREEMENT ({what}): {problem}; input in {f}")


def run(seconds: float, seed: int, corpora: list[Path], say: Callable[[str], None] = print,
        out: Path = OUT) -> dict[str, Any]:
    rng = random.Random(seed)
    corpus = load_corpus(corpora)
    jsons = [ln[4:] for blob in corpus for ln in blob.split(b"\n") if ln.startswith(b"@yf ")] or corpus
    stats = {"commands": 0, "streams": 0, "base64": 0, "writer": 0, "disagreements": 0}
    kinds: dict[str, int] = {}
    t0 = time.monotonic()
    deadline = t0 + seconds
    while time.monotonic() < deadline:
        for _ in range(200):
            r = rng.random()
            if r < 0.03:
                stats["writer"] += 1
                data, problem = compare_writer(rng)
                if problem:
                    _record(stats, kinds, "writer", data, problem, say, out)
                continue
            if r < 0.45:
                data, what, problem = generate(rng), "commands", None
            elif r < 0.85:
                data, what = mutate(rng, rng.choice(jsons), jsons), "commands"
            elif r < 0.95:
                data, what = mutate(rng, b"\n".join(rng.choice(corpus) for _ in range(rng.randint(1, 4))), corpus), \
                    "streams"
            else:
                data, what = mutate(rng, base64.b64encode(rng.randbytes(rng.randint(0, 40))), [b"AA==", b"QUJD"]), \
                    "base64"
            problem = (compare_command(data) if what == "commands" else compare_stream(rng, data)
                       if what == "streams" else compare_b64(data))
            stats[what] += 1
            if problem:
                _record(stats, kinds, what, data, problem, say, out)
    dt = time.monotonic() - t0
    total = stats["commands"] + stats["streams"] + stats["base64"] + stats["writer"]
    return {**stats, "inputs": total, "seconds": round(dt, 1), "inputs_per_s": round(total / dt),
            "corpus": len(corpus), "seed": seed, "kinds": kinds}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=None, help="default: new each run (printed)")
    ap.add_argument("--json", default=None, help="write the statistics here")
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else int(time.time())
    r = run(a.seconds, seed, [SEEDS, GROWN])
    print(f"differential: {r['inputs']:,} inputs in {r['seconds']} s ({r['inputs_per_s']:,}/s: {r['commands']:,} "
          f"commands, {r['streams']:,} byte streams, {r['base64']:,} base64, {r['writer']:,} events written), "
          f"seed {seed}: "
          f"{r['disagreements']} disagreement(s)")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(r, indent=2) + "\n")
    return 1 if r["disagreements"] else 0


if __name__ == "__main__":
    sys.exit(main())
