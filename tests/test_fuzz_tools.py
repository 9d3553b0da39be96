"""The fuzzing harnesses of tests/fuzz can fail: each one catches a decoder bug planted on purpose.

`make fuzz` (and the 60 s run in `make test`) passing means something only if a broken decoder makes them
fail; these checks plant the very bugs issue 12 found (the sign of a zero threshold, Python accepting longer
lines than C) and expect a crash report or disagreements.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):  # tests/fuzz holds scripts, not a package
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


differential = _load("yf_fuzz_differential", ROOT / "tests" / "fuzz" / "differential.py")
fuzz_run = _load("yf_fuzz_run", ROOT / "tests" / "fuzz" / "run.py")


def test_c_harness_aborts_on_a_decoder_that_keeps_minus_zero(tmp_path):
    """yf_proto.c with the -0 fix undone: the seed corpus's `"threshold":-0` breaks the harness's promise."""
    if not shutil.which("gcc") and not shutil.which("cc"):
        pytest.skip("no C compiler")
    core = tmp_path / "yf_core"
    shutil.copytree(fuzz_run.CORE, core)
    src = core / "src" / "yf_proto.c"
    text = src.read_text()
    fixed = "*(float *)field_at(cmd, a->off) = x == 0.0 ? 0.0f : (float)x;"
    assert fixed in text
    src.write_text(text.replace(fixed, "*(float *)field_at(cmd, a->off) = (float)x;"))
    exe = fuzz_run.build("gcc", core=core, out=tmp_path / "out")
    r = fuzz_run.fuzz_c("gcc", 2, exe=exe, out=tmp_path / "out")
    assert not r["ok"] and r["exit"] != 0 and r["artifacts"], r
    assert "broken promise" in r["report"] and "signbit" in r["report"]
    assert b"-0" in Path(r["artifacts"][0]).read_bytes()


def test_c_harness_passes_the_seed_corpus_under_sanitizers(tmp_path):
    if not shutil.which("gcc") and not shutil.which("cc"):
        pytest.skip("no C compiler")
    r = fuzz_run.fuzz_c("gcc", 1, out=tmp_path / "out")
    assert r["ok"] and r["inputs"] >= len(list(fuzz_run.SEEDS.iterdir())), r


def test_differential_flags_a_python_decoder_that_keeps_minus_zero(tmp_path, monkeypatch):
    from yamflash.board import protocol as P

    real = P.parse_command

    def keeps_sign(raw):
        msg = real(raw)
        if msg.get("threshold") == 0.0 and b"-0" in (raw if isinstance(raw, bytes) else raw.encode()):
            msg["threshold"] = -0.0
        return msg

    monkeypatch.setattr(P, "parse_command", keeps_sign)
    r = differential.run(3, 1, [fuzz_run.SEEDS], say=lambda s: None, out=tmp_path)
    assert r["disagreements"] > 0 and "threshold" in r["kinds"], r
    assert list(tmp_path.glob("commands-*.bin"))


def test_differential_flags_a_python_splitter_with_a_longer_limit(tmp_path, monkeypatch):
    from yamflash.board import protocol as P

    monkeypatch.setattr(P, "MAX_LINE", P.MAX_LINE + 1000)
    r = differential.run(3, 2, [fuzz_run.SEEDS], say=lambda s: None, out=tmp_path)
    assert r["disagreements"] > 0, r


def test_differential_agrees_on_the_fixed_decoders(tmp_path):
    r = differential.run(2, 3, [fuzz_run.SEEDS], say=print, out=tmp_path)
    assert r["disagreements"] == 0 and r["commands"] > 1000 and r["streams"] > 50 and r["writer"] > 10, r
