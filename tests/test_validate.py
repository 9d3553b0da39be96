"""yamflash validate: metrics on constructed cases, gates, and a run against the virtual board."""

from __future__ import annotations

import json

import numpy as np
import pytest
from simboard import cli, tiny_sim, write_wav  # noqa: F401  (tiny_sim is a fixture)
from yamflash.board.validate import check_gates, frontend_metrics, int8_metrics, parse_gate, score_metrics
from yamflash.errors import UserError
from yamflash.frontend import quantize

SCALE, ZP = 1 / 256, -128


def test_identical_outputs_are_bit_exact():
    q = np.random.default_rng(0).integers(-128, 128, (6, 521), dtype=np.int8)
    m = int8_metrics(q, q.copy(), SCALE, ZP)
    assert m["bit_exact"] == 1.0 and m["patch_bit_exact"] == 1.0 and m["max_lsb"] == 0
    assert m["cosine"] == 1.0 and m["rmse"] == 0 and m["mae"] == 0 and m["l2_rel"] == 0
    assert m["top1"] == 1.0 and m["clip_top1"] == 1.0


def test_known_perturbation_gives_known_errors():
    """+2 LSB on one class of 8 in every patch: 7/8 bit-exact, RMSE = 2 * scale * sqrt(1/8), MAE = 2 * scale / 8."""
    rng = np.random.default_rng(1)
    ref = rng.integers(-128, 100, (5, 8), dtype=np.int8)
    test = ref.copy()
    test[:, 3] += 2
    m = int8_metrics(test, ref, SCALE, ZP)
    assert m["bit_exact"] == pytest.approx(7 / 8) and m["patch_bit_exact"] == 0.0 and m["max_lsb"] == 2
    assert m["rmse"] == pytest.approx(2 * SCALE * np.sqrt(1 / 8), abs=1e-6)
    assert m["mae"] == pytest.approx(2 * SCALE / 8, abs=1e-6)
    f = score_metrics(np.full((4, 3), 0.5) + [0.1, 0, 0], np.full((4, 3), 0.5), lsb=0.05)
    assert f["max_lsb"] == 2 and f["rmse"] == pytest.approx(0.1 / np.sqrt(3), abs=1e-6)


def test_clip_top1_uses_the_mean_over_patches():
    ref = np.array([[0.9, 0.1], [0.0, 0.3], [0.0, 0.3]])  # mean: class 0 (0.3 vs 0.233)
    test = np.array([[0.1, 0.9], [0.0, 0.3], [0.0, 0.3]])
    assert score_metrics(test, ref)["clip_top1"] == 0.0 and score_metrics(ref, ref)["clip_top1"] == 1.0


def test_frontend_error_in_lsb_and_log_mel():
    host = np.random.default_rng(2).uniform(-6, 4, (2, 96, 64)).astype(np.float32)
    scale, zp = 0.05, 20
    board = quantize(host, scale, zp)
    m = frontend_metrics(board, host, scale, zp)
    assert m["max_lsb"] == 0 and m["equal"] == 1.0 and m["max_logmel"] <= scale / 2 + 1e-6
    board[1, 5, 7] += 3
    m = frontend_metrics(board, host, scale, zp)
    assert m["max_lsb"] == 3 and m["max_logmel"] == pytest.approx(3 * scale, abs=scale / 2 + 1e-6)


def test_gates_fail_in_the_right_direction():
    report = {"overall": {"patch": {"bit_exact": 0.98, "max_lsb": 1}, "float": {"top1": 0.9, "rmse": 0.02}}}
    assert check_gates(report, ["patch.bit_exact=0.95", "float.rmse=0.05", "patch.max_lsb=1"]) is None
    assert "patch.bit_exact" in check_gates(report, ["patch.bit_exact=1"])
    assert "float.rmse failed: 0.02 > 0.01" in check_gates(report, ["float.rmse=0.01"])
    assert "no frontend" in check_gates(report, ["frontend.max_lsb=0"])
    for bad in ("bit_exact=1", "patch.nonsense=1", "patch.bit_exact=high", "patch.bit_exact"):
        with pytest.raises(UserError):
            parse_gate(bad)


def test_validate_on_the_virtual_board(tiny_sim, tmp_path, capsys):  # noqa: F811
    clip = write_wav(tmp_path / "chirp.wav", 2.5)
    out = tmp_path / "report.json"
    rc = cli("validate", "--port", "sim", "--sim-flash", str(tiny_sim.flash), "--model-dir", str(tiny_sim.model_dir),
             "--audio", str(clip), "--plots", str(tmp_path / "png"), "--out", str(out), "--json",
             "--fail-under", "patch.bit_exact=1", "--fail-under", "frontend.max_lsb=1")
    assert rc == 0, capsys.readouterr().err
    r = json.loads(out.read_text())
    assert r["clock"] == "host" and r["clips"][0]["patches"] == 4
    o = r["overall"]
    assert o["patch"]["bit_exact"] == 1.0 and o["patch"]["max_lsb"] == 0  # same TFLM kernels on the sim
    assert o["pcm"]["patches"] == 4 and o["frontend"]["max_lsb"] <= 1  # yf_core's frontend vs numpy's
    assert "float" not in o and "unavailable" in r["float_note"]
    png = tmp_path / "png" / "chirp.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and r["clips"][0]["png"] == str(png)

    rc = cli("validate", "--port", "sim", "--sim-flash", str(tiny_sim.flash), "--model-dir", str(tiny_sim.model_dir),
             "--audio", str(clip), "--fail-under", "pcm.cosine=1.5")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1].startswith("yamflash: validate: gate pcm.cosine failed")


def test_bad_input_is_one_line(tiny_sim, tmp_path, capsys):  # noqa: F811
    rc = cli("validate", "--port", "sim", "--sim-flash", str(tiny_sim.flash), "--audio", str(tmp_path / "none.wav"))
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    rc = cli("validate", "--port", "sim", "--sim-flash", str(tiny_sim.flash), "--audio", str(tmp_path),
             "--fail-under", "cosine=1")
    assert rc == 2 and "SECTION.METRIC=VALUE" in capsys.readouterr().err


@pytest.mark.slow
def test_real_yamnet_against_float(converted, demo_dir, tmp_path):
    """The converted YAMNet on a virtual board: bit-exact with host TFLM, and float metrics computed."""
    from simboard import sim_manifest
    from yamflash.board import flash as fl
    from yamflash.board.connect import open_board
    from yamflash.board.sim.process import spawn
    from yamflash.board.validate import validate

    flash_file = tmp_path / "flash.bin"
    fl.flash_sim(fl.load_plan(sim_manifest(converted)), flash_file)
    proc = spawn(flash_file)
    try:
        with open_board("sim", flash_file) as board:
            r = validate(board, converted, [demo_dir / "dog_975ms.wav"])
    finally:
        proc.stop()
    o = r["overall"]
    assert o["patch"]["bit_exact"] == 1.0 and o["float"]["patches"] == 1
    assert 0 <= o["float"]["cosine"] <= 1 and o["float"]["rmse"] >= 0 and "max_lsb" in o["float"]
