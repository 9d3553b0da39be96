"""Bad input: one clear error line, a non-zero exit, no traceback, nothing half-written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "yamflash", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def assert_one_line_error(p: subprocess.CompletedProcess, needle: str) -> None:
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("yamflash: error:")]
    assert len(errors) == 1, p.stderr
    assert needle in errors[0], errors[0]


def test_missing_weights(tmp_path):
    p = run("convert", "--weights", str(tmp_path / "nope.h5"), "--calib-dir", str(tmp_path),
            "--out", str(tmp_path / "o"))
    assert_one_line_error(p, "does not exist")
    assert not (tmp_path / "o").exists()


def test_not_a_model(tmp_path):
    f = tmp_path / "x.tflite"
    f.write_bytes(b"hello world, not a flatbuffer at all")
    assert_one_line_error(run("inspect", str(f)), "not a TFLite model")
    p = run("convert", "--weights", str(f), "--synthetic-calibration", "--out", str(tmp_path / "o"))
    assert_one_line_error(p, "neither a Keras .h5 nor a .tflite")


def test_truncated_model(tmp_path, drq_model):
    f = tmp_path / "cut.tflite"
    f.write_bytes(drq_model.read_bytes()[:200_000])
    assert_one_line_error(run("inspect", str(f)), "damaged")


def test_empty_calibration_folder(tmp_path, drq_model):
    (tmp_path / "empty").mkdir()
    p = run("convert", "--weights", str(drq_model), "--calib-dir", str(tmp_path / "empty"),
            "--out", str(tmp_path / "o"))
    assert_one_line_error(p, "no audio files")
    assert not (tmp_path / "o" / "model.tflite").exists()


def test_undecodable_audio(tmp_path, drq_model):
    d = tmp_path / "audio"
    d.mkdir()
    (d / "a.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (d / "b.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    p = run("convert", "--weights", str(drq_model), "--calib-dir", str(d), "--out", str(tmp_path / "o"))
    assert_one_line_error(p, "cannot decode audio")


def test_no_calibration_audio_refused(tmp_path, drq_model):
    p = run("convert", "--weights", str(drq_model), "--out", str(tmp_path / "o"))
    assert_one_line_error(p, "--calib-dir")
