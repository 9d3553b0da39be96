"""`yamflash distill`: the student's budget and ops, bad input, the no-test-leak rule, and a real run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from yamflash.errors import UserError
from yamflash.learn import distill, teacher, train
from yamflash.learn import student as net


def _wav(path: Path, seed: int = 0, seconds: float = 1.0) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(seed).normal(0, 0.1, int(16000 * seconds)).astype(np.float32), 16000)


def test_student_fits_the_budget_and_converts_to_esp_nn_ops():
    from yamflash.chip.inspect import inspect
    from yamflash.model.tflm import MicroModel

    student = net.build_student()
    assert 100_000 <= student.count_params() <= 200_000
    assert student.output_shape == (None, net.EMBEDDING)
    rng = np.random.default_rng(0)
    k, b = rng.normal(0, 0.05, (net.EMBEDDING, 3)).astype(np.float32), np.zeros(3, np.float32)
    calib = rng.normal(-5, 3, (16, 96, 64)).astype(np.float32)
    tfl = distill.to_int8(net.classifier(student, k, b, 1), calib)
    path = Path(__file__).parent.parent / "build" / "test-distill-student.tflite"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(tfl)
    try:
        rep = inspect(path)
    finally:
        path.unlink()
    distill.check_ops(rep["op_counts"])
    assert set(rep["op_counts"]) <= net.ALLOWED_OPS and rep["compute_types"] == ["int8"]
    assert rep["inputs"][0]["shape"] == [1, 96, 64] and rep["inputs"][0]["dtype"] == "int8"
    assert MicroModel(tfl).output_quant == (1 / 256, -128)
    assert rep["arena_bytes"] <= 128 * 1024 and len(tfl) <= 256 * 1024


def test_student_mirrors_yamnet_layers():
    from yamflash.model.weights import LAYER_DEFS

    plan = net.student_plan()
    assert plan[0][1] == "conv" and [p[1] for p in plan[1:]] == ["dw", "pw"] * (len(net.STUDENT_WIDTHS) - 1)
    strides = [p[2] for p in plan if p[1] in ("conv", "dw")]
    assert strides == [d[1] for d in LAYER_DEFS[: len(net.STUDENT_WIDTHS)]]
    assert plan[-1][3] == net.EMBEDDING == 256


def test_greedy_span_skips_redundant_channels():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(500, 3))
    x = np.concatenate([base, base[:, :1] * 2.0, base[:, 1:2] + 1e-6 * rng.normal(size=(500, 1))], 1)
    assert sorted(net._greedy_span(x.T @ x, 3) % 3) == [0, 1, 2]  # one of each direction, never a copy


def test_check_ops_rejects_ops_outside_the_set():
    with pytest.raises(UserError, match="ADD"):
        distill.check_ops({"CONV_2D": 3, "ADD": 1})


def test_unlabelled_set_never_holds_a_test_clip(tmp_path):
    for seed, name in enumerate(("t1", "t2", "u1", "u2", "same_src")):
        _wav(tmp_path / "lab" / f"{name}.wav", seed=seed)
    shutil.copy(tmp_path / "lab" / "t1.wav", tmp_path / "lab" / "renamed_copy.wav")  # same content, other name
    lab = tmp_path / "lab"
    test = [train.Clip(lab / "t1.wav", "a", "src1"), train.Clip(lab / "t2.wav", "b", "src2")]
    groups = {(lab / "same_src.wav").resolve(): "src2"}  # another take of a test source
    files, held = teacher.unlabelled_files([lab, lab], test, groups)  # a folder twice: no duplicates
    assert [f.name for f in files] == ["u1.wav", "u2.wav"] and held == 4


def test_esc10_split_is_held_out_of_the_unlabelled_set(data_dir):
    csv_path = data_dir / "audio" / "esc50-16k-dev" / "meta" / "esc50.csv"
    clips, groups, dirs = distill._labelled(None, str(csv_path), None, {"esc10": "True"})
    _, test_idx = train.split(clips, 0.4, 0, None)  # what `train` and `distill` use by default
    test = [clips[i] for i in test_idx]
    files, held = teacher.unlabelled_files(dirs, test, groups)
    kept = {f.resolve() for f in files}
    assert held >= len(test) and not kept & {c.path.resolve() for c in test}
    test_sha = {teacher._sha(c.path) for c in test}
    assert not any(teacher._sha(f) in test_sha for f in files)
    assert not {groups.get(f.resolve()) for f in files} & {c.group for c in test}


def test_bad_input_is_a_user_error_and_writes_nothing(tmp_path, drq_model):
    cfg = distill.DistillConfig(epochs=1, views=1)
    out = tmp_path / "out"
    with pytest.raises(UserError, match="exactly one of"):
        distill.distill(str(drq_model), None, None, None, {}, [], str(out), 0.4, None, cfg)
    _wav(tmp_path / "one" / "dog" / "a.wav")
    _wav(tmp_path / "one" / "dog" / "b.wav", seed=1)
    with pytest.raises(UserError, match="only one class"):
        distill.distill(str(drq_model), str(tmp_path / "one"), None, None, {}, [], str(out), 0.4, None, cfg)
    with pytest.raises(UserError, match="at least 1"):
        distill.distill(str(drq_model), str(tmp_path / "one"), None, None, {}, [], str(out), 0.4, None,
                    distill.DistillConfig(views=0))
    assert not out.exists()


def test_cli_bad_input_is_one_line(tmp_path, drq_model):
    (tmp_path / "x.csv").write_text("name,label\na.wav,dog\n")
    p = subprocess.run([sys.executable, "-m", "yamflash", "distill", "--weights", str(drq_model), "--csv",
                        str(tmp_path / "x.csv"), "--out", str(tmp_path / "o")], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("yamflash: error:")]
    assert p.returncode == 2 and "Traceback" not in p.stderr and len(errors) == 1
    assert "filename and category" in errors[0] and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_distill_end_to_end(tmp_path, drq_model, data_dir):
    """A short real run on part of ESC-10: artefacts and schema, not the accuracy target."""
    esc = data_dir / "audio" / "esc50-16k-dev"
    clips = train.clips_from_csv(esc / "meta" / "esc50.csv", None, {"esc10": "True"})
    for c in clips:
        if c.label in ("dog", "rooster", "rain"):
            (tmp_path / "data" / c.label).mkdir(parents=True, exist_ok=True)
            shutil.copy(c.path, tmp_path / "data" / c.label / c.path.name)
    out = tmp_path / "o"
    p = subprocess.run([sys.executable, "-m", "yamflash", "distill", "--weights", str(drq_model), "--data",
                        str(tmp_path / "data"), "--unlabelled", str(tmp_path / "data"), "--unlabelled",
                        str(data_dir / "audio" / "demo"), "--epochs", "1", "--views", "2", "--calib-count", "64",
                        "--out", str(out), "--json"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    t = json.loads(p.stdout)
    m = json.loads((out / "model.json").read_text())
    assert m["schema"] == 1 and m["labels"] == ["dog", "rain", "rooster"] and m["output"]["shape"] == [1, 3]
    assert m["output"]["scale"] == 1 / 256 and m["output"]["zero_point"] == -128
    assert m["input"]["shape"] == [1, 96, 64] and m["input"]["dtype"] == "int8"
    assert set(m["ops"]) <= net.ALLOWED_OPS and m["arena_bytes"] <= 128 * 1024
    assert m["model"]["bytes"] == (out / "model.tflite").stat().st_size <= 256 * 1024
    assert 100_000 <= m["parameters"] <= 200_000 and m["macs_per_patch"] > 0
    assert t["distill"]["held_out_test_files"] == t["test_clips"] > 0
    assert t["int8_tflm"]["clips"] == t["test_clips"] and 0.0 <= t["float"]["accuracy"] <= 1.0
    assert m["training"] == t and json.loads((out / "training.json").read_text()) == t
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_cv_folds_never_put_a_source_recording_on_both_sides(data_dir):
    from yamflash.learn import cv

    clips = train.clips_from_csv(data_dir / "audio" / "esc50-16k-dev" / "meta" / "esc50.csv", None,
                                 {"esc10": "True"})
    assert len(clips) == 52
    for k in (2, 5, 10):
        folds = cv.group_folds(clips, k, 0)
        assert sorted(set(folds)) == list(range(k))  # every fold tests something
        for f in range(k):
            train_idx, test_idx = cv.fold_split(folds, f)
            assert sorted(train_idx + test_idx) == list(range(len(clips)))
            assert not {clips[i].group for i in train_idx} & {clips[i].group for i in test_idx}
        sizes = np.bincount(folds)
        assert sizes.max() - sizes.min() <= 3  # balanced, so no fold's figure rests on a handful of clips


def test_cv_rejects_too_few_or_too_many_folds():
    from yamflash.learn import cv

    clips = [train.Clip(Path(f"{i}.wav"), "ab"[i % 2], f"src{i // 2}") for i in range(8)]  # 4 sources
    with pytest.raises(UserError, match="at least 2"):
        cv.group_folds(clips, 1)
    with pytest.raises(UserError, match="only 4 source groups"):
        cv.group_folds(clips, 5)
    assert len(set(cv.group_folds(clips, 4))) == 4


def test_cv_intervals():
    from yamflash.learn import cv

    lo, hi = cv.wilson(26, 52)
    assert lo == pytest.approx(0.3686, abs=1e-3) and hi == pytest.approx(0.6314, abs=1e-3)
    assert cv.wilson(52, 52)[1] == 1.0 and cv.wilson(52, 52)[0] > 0.9
    hits = [True] * 40 + [False] * 12
    groups = [f"g{i // 4}" for i in range(52)]  # clips of a source agree more than chance: the interval widens
    blo, bhi = cv.group_bootstrap(hits, groups)
    assert blo < 40 / 52 < bhi and bhi - blo > cv.wilson(40, 52)[1] - cv.wilson(40, 52)[0]


def test_held_out_views_drop_test_audio_even_when_mixed_in():
    targets = {"owner": np.array([0, 0, 1, 1, 2, 2]), "partner": np.array([-1, 1, -1, 2, -1, 0])}
    held = np.array([False, True, False])
    assert teacher.usable(targets, held).tolist() == [True, False, False, False, True, True]


def test_composed_head_is_the_teacher_head_read_through_the_projection():
    rng = np.random.default_rng(0)
    pw, pb = rng.normal(size=(8, 16)), rng.normal(size=16)
    mu, sd = rng.normal(size=16), rng.uniform(0.5, 2, 16)
    k, b = rng.normal(size=(16, 3)), rng.normal(size=3)
    x = rng.normal(size=(5, 8))
    kc, bc = distill.composed_head((pw, pb, mu, sd), k, b)
    assert kc.shape == (8, 3) and np.allclose(x @ kc + bc, ((x @ pw + pb) * sd + mu) @ k + b, atol=1e-4)


def test_cli_cv_flag(tmp_path, drq_model):
    base = [sys.executable, "-m", "yamflash", "distill", "--weights", str(drq_model), "--out", str(tmp_path / "o")]
    p = subprocess.run([*base, "--data", str(tmp_path), "--cv", "1"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "--cv 1" in p.stderr
    for cls in ("dog", "cat"):
        for i in range(2):
            _wav(tmp_path / "d" / cls / f"{i}.wav", seed=i)
    p = subprocess.run([*base, "--data", str(tmp_path / "d"), "--cv", "9"], capture_output=True, text=True,
                       timeout=120)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("yamflash: error:")]
    assert p.returncode == 2 and len(errors) == 1 and "only 4 source groups" in errors[0]
    assert not (tmp_path / "o").exists()
    h = subprocess.run([*base[:4], "--help"], capture_output=True, text=True, timeout=120)
    assert "--cv" in h.stdout
