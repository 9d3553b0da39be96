"""The static ESP32-S3 estimate: documented constants, linear in MACs, and the CLI entry points."""

from __future__ import annotations

import inspect as pyinspect
import json

import pytest
from simboard import cli, model_dir, tiny_model
from yamflash import estimate as E


def test_constants_cite_their_source_and_match_the_published_ticks():
    src = pyinspect.getsource(E)
    for cite in ("espressif/esp-nn, README.md (commit 0798b58f)", "espressif/esp-tflite-micro, README.md",
                 "54 ms", "Uncertainty"):
        assert cite in src
    assert pytest.approx(461_398 / 409_600) == E.CPM_POINTWISE_64CH
    assert pytest.approx(191_931 / 36_864) == E.CPM_DEPTHWISE_3X3
    assert 1 < E.CPM_POINTWISE_64CH < E.CPM_POINTWISE_16CH < E.CPM_DEPTHWISE_3X3 < E.CPM_CONV_3X3
    published, predicted = E.CHECK_PERSON_DETECTION_MS
    assert abs(predicted / published - 1) < E.UNCERTAINTY


def test_pointwise_cost_falls_with_input_depth():
    costs = [E.cycles_per_mac("CONV_2D", c, (1, 1)) for c in (8, 16, 32, 64, 512)]
    assert costs == sorted(costs, reverse=True)
    assert costs[0] == E.CPM_POINTWISE_16CH and costs[-1] == E.CPM_POINTWISE_64CH


def test_estimate_scales_with_macs(tmp_path):
    small, big = tmp_path / "s.tflite", tmp_path / "b.tflite"
    small.write_bytes(tiny_model(8))
    big.write_bytes(tiny_model(64))
    es, eb = E.estimate(small, measure_arena=False), E.estimate(big, measure_arena=False)
    fc_s, fc_b = es["layers"][0], eb["layers"][0]
    assert fc_s["op"] == "FULLY_CONNECTED" and fc_s["macs"] == 8 * 6144 and fc_b["macs"] == 64 * 6144
    assert fc_b["cycles"] == pytest.approx(8 * fc_s["cycles"], rel=1e-3)
    assert eb["invoke_ms"] > es["invoke_ms"] and eb["layers"][-1]["cumulative"] == pytest.approx(1.0)
    lo, hi = eb["invoke_ms_range"]
    assert lo < eb["invoke_ms"] < hi and eb["clock"] == "estimate"


def test_inspect_and_bench_estimate_cli(tmp_path, capsys):
    mdir = model_dir(tmp_path / "m")
    assert cli("inspect", str(mdir / "model.tflite"), "--estimate", "--json", "--no-arena") == 0
    e = json.loads(capsys.readouterr().out)
    assert e["macs"] == 8 * 6144 and [r["op"] for r in e["layers"]] == ["FULLY_CONNECTED", "LOGISTIC"]
    assert cli("bench", "--estimate", "--model-dir", str(mdir)) == 0
    out = capsys.readouterr().out
    assert "not a measurement" in out and "FULLY_CONNECTED" in out and "esp-nn" in out


@pytest.mark.slow
def test_real_models_rank_as_expected(converted):
    """Full YAMNet: ~69 M MACs, hundreds of ms (the tiny head model is orders of magnitude cheaper)."""
    e = E.estimate(converted / "model.tflite", measure_arena=False)
    assert 60e6 < e["macs"] < 80e6 and 100 < e["invoke_ms"] < 1500
