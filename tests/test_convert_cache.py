"""The conversion cache: a hit only when weights, labels, audio, settings and yamflash's code are all the same,
and a hit gives the bytes the conversion wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from make_args import convert_args
from yamflash.convert import cache as convert_cache


def _inputs(tmp: Path) -> tuple[Path, Path, Path]:
    (tmp / "audio" / "a").mkdir(parents=True)
    (tmp / "audio" / "a" / "one.wav").write_bytes(b"RIFF one")
    (tmp / "audio" / "two.wav").write_bytes(b"RIFF two")
    (tmp / "audio" / "notes.txt").write_text("not audio: ignored")
    (tmp / "w.tflite").write_bytes(b"weights")
    (tmp / "labels.csv").write_text("index,mid,display_name\n")
    return tmp / "w.tflite", tmp / "labels.csv", tmp / "audio"


def test_key_follows_every_input(tmp_path: Path) -> None:
    w, lab, audio = _inputs(tmp_path)
    settings = {"calib_count": 1000, "seed": 0}

    def k(**over: object) -> str:
        return convert_cache.key(str(w), str(lab), str(audio), None, {**settings, **over})  # type: ignore[arg-type]

    base = k()
    assert k() == base  # same inputs, same key
    (audio / "notes.txt").write_text("changed, but not audio")
    assert k() == base
    assert k(seed=1) != base
    (audio / "a" / "one.wav").write_bytes(b"RIFF 1ne")
    changed_audio = k()
    assert changed_audio != base
    (audio / "two.wav").rename(audio / "three.wav")
    assert k() != changed_audio
    before = k()
    w.write_bytes(b"other weights")
    assert k() != before
    before = k()
    lab.write_text("index,mid,display_name\n0,/m/x,X\n")
    assert k() != before


def test_store_then_restore_gives_the_same_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YAMFLASH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.tflite").write_bytes(b"\x00tflite")
    (out / "model.json").write_text(json.dumps({"schema": 1}))
    assert convert_cache.lookup("k1") is None
    convert_cache.store("k1", out)
    hit = convert_cache.lookup("k1")
    assert hit is not None
    m = convert_cache.restore(hit, tmp_path / "again")
    assert m == {"schema": 1} and (tmp_path / "again" / "model.tflite").read_bytes() == b"\x00tflite"


def test_converting_again_reuses_the_cached_conversion(converted: Path, drq_model: Path, esc50_dir: Path,
                                                        class_map: Path, tmp_path: Path) -> None:
    """The same `yamflash convert` command twice: the second is a cache hit with the first one's bytes."""
    args = convert_args(drq_model, esc50_dir, class_map)

    def run(out: Path) -> str:
        p = subprocess.run([sys.executable, "-m", "yamflash", "convert", *args, "--out", str(out)],
                           capture_output=True, text=True, timeout=1800)
        assert p.returncode == 0, p.stderr[-2000:]
        return p.stderr

    first = run(tmp_path / "a")  # a hit already when the `converted` fixture converted in this environment
    second = run(tmp_path / "b")
    assert "reused it" in second, second[-2000:]
    for name in ("model.tflite", "model.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    if "reused it" not in first:  # the first converted: the cache holds exactly what it wrote
        assert (tmp_path / "a" / "model.tflite").stat().st_size > 1_000_000
