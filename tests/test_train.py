"""`yamflash train`: dataset handling, splits that never leak a source, bad input, and the ESC-10 run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from yamflash.errors import UserError
from yamflash.learn import train


def _wav(path: Path, seconds: float = 1.0) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(0).normal(0, 0.1, int(16000 * seconds)).astype(np.float32), 16000)


def test_empty_class_folder_is_an_error(tmp_path):
    _wav(tmp_path / "dog" / "a.wav")
    (tmp_path / "cat").mkdir()
    with pytest.raises(UserError, match="cat has no audio"):
        train.clips_from_folder(tmp_path)


def test_one_class_only_is_an_error(tmp_path, drq_model):
    _wav(tmp_path / "dog" / "a.wav")
    _wav(tmp_path / "dog" / "b.wav")
    with pytest.raises(UserError, match="only one class"):
        train.train(str(drq_model), str(tmp_path), None, None, {}, str(tmp_path / "out"), [], 0.4, None, 0, 100, None)
    assert not (tmp_path / "out").exists()


def test_csv_missing_columns(tmp_path):
    (tmp_path / "x.csv").write_text("name,label\na.wav,dog\n")
    with pytest.raises(UserError, match="filename and category"):
        train.clips_from_csv(tmp_path / "x.csv", None, {})


def test_unreadable_audio_is_one_error_line(tmp_path, drq_model):
    for cls in ("dog", "cat"):
        for i in range(2):
            (tmp_path / "d" / cls).mkdir(parents=True, exist_ok=True)
            (tmp_path / "d" / cls / f"{i}.wav").write_bytes(b"RIFF....WAVEnot audio")
    p = subprocess.run([sys.executable, "-m", "yamflash", "train", "--weights", str(drq_model), "--data",
                        str(tmp_path / "d"), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "cannot decode audio" in p.stderr
    assert not (tmp_path / "out").exists()


def test_split_keeps_sources_together():
    clips = [train.Clip(Path(f"{c}{g}{k}.wav"), c, f"{c}{g}") for c in "ab" for g in range(5) for k in range(3)]
    tr, te = train.split(clips, 0.4, 0, None)
    assert set(tr).isdisjoint(te) and len(tr) + len(te) == len(clips)
    assert {clips[i].group for i in tr}.isdisjoint({clips[i].group for i in te})
    assert {clips[i].label for i in te} == {"a", "b"}


def test_split_by_fold_when_folds_exist():
    clips = [train.Clip(Path(f"{i}.wav"), "ab"[i % 2], str(i), str(1 + i % 3)) for i in range(12)]
    tr, te = train.split(clips, 0.4, 0, None)
    assert {clips[i].fold for i in te} == {"3"} and "3" not in {clips[i].fold for i in tr}


@pytest.mark.slow
def test_esc10_end_to_end(tmp_path, drq_model, data_dir):
    csv_path = data_dir / "audio" / "esc50-16k-dev" / "meta" / "esc50.csv"
    out = tmp_path / "esc10"
    p = subprocess.run([sys.executable, "-m", "yamflash", "train", "--weights", str(drq_model), "--csv", str(csv_path),
                        "--where", "esc10=True", "--calib-count", "300", "--out", str(out), "--json"],
                       capture_output=True, text=True, timeout=1800, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    t = json.loads(p.stdout)
    m = json.loads((out / "model.json").read_text())
    assert m["labels"] == t["classes"] and len(t["classes"]) == 10 and m["output"]["shape"] == [1, 10]
    assert t["float"]["accuracy"] >= 0.85
    assert 0.0 <= t["int8_tflm"]["accuracy"] <= 1.0 and t["int8_tflm"]["clips"] == t["test_clips"]
    assert (out / "confusion_int8.png").stat().st_size > 1000
