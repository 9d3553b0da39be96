"""yamflash bench: statistics, baseline regression detection, and a run against the virtual board."""

from __future__ import annotations

import json

import numpy as np
import pytest
from simboard import cli, tiny_sim  # noqa: F401  (tiny_sim is a fixture)
from yamflash.board.bench import compare_baseline, load_report, op_profile, summarize
from yamflash.errors import UserError


def test_summary_statistics():
    s = summarize(list(range(1, 101)))
    assert s["n"] == 100 and s["min"] == 1 and s["max"] == 100 and s["mean"] == 50.5
    assert (s["p50"], s["p90"], s["p99"]) == (50, 90, 99)  # nearest-rank, as the chip's bench reply
    assert s["std"] == pytest.approx(np.std(np.arange(1, 101)))
    assert summarize([]) is None


def test_op_profile_shares_and_cumulative():
    rows = op_profile([{"op": "MEAN", "us": 10}, {"op": "CONV_2D", "us": 70}, {"op": "DEPTHWISE_CONV_2D", "us": 20}])
    assert [r["op"] for r in rows] == ["CONV_2D", "DEPTHWISE_CONV_2D", "MEAN"]
    assert [round(r["share"], 2) for r in rows] == [0.7, 0.2, 0.1]
    assert [round(r["cumulative"], 2) for r in rows] == [0.7, 0.9, 1.0]


def _report(**over):
    r = {"kind": "yamflash-bench", "clock": "chip", "invoke_us": {"mean": 100.0, "p90": 120.0},
         "arena": {"used": 1000}, "memory": {"heap_min": 5000}, "first_invoke_us": 300.0}
    for k, v in over.items():
        r[k] = v
    return r


def test_baseline_flags_regressions_beyond_tolerance():
    base = _report()
    same = {r["metric"]: r for r in compare_baseline(_report(), base)}
    assert not any(r["regressed"] for r in same.values()) and "invoke_us.mean" in same
    slower = _report(invoke_us={"mean": 115.0, "p90": 125.0}, memory={"heap_min": 4000})
    rows = {r["metric"]: r for r in compare_baseline(slower, base, 0.10)}
    assert rows["invoke_us.mean"]["regressed"] and rows["invoke_us.mean"]["change"] == pytest.approx(0.15)
    assert not rows["invoke_us.p90"]["regressed"]  # +4 % is within 10 %
    assert rows["memory.heap_min"]["regressed"]  # less free heap is worse
    assert not any(r["regressed"] for r in compare_baseline(slower, base, 0.25))
    faster = _report(invoke_us={"mean": 50.0, "p90": 60.0})
    assert not any(r["regressed"] for r in compare_baseline(faster, base))
    host = compare_baseline(_report(clock="host"), base)
    assert {r["metric"] for r in host} == {"arena.used", "memory.heap_min"}  # host vs chip timings never compared


def test_load_report_rejects_other_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_report(tmp_path / "none.json")
    (tmp_path / "x.json").write_text('{"kind": "yamflash-validate"}')
    with pytest.raises(UserError, match="not a `yamflash bench` report"):
        load_report(tmp_path / "x.json")


def test_bench_on_the_virtual_board(tiny_sim, tmp_path, capsys):  # noqa: F811
    from simboard import sim_manifest

    out = tmp_path / "bench.json"
    args = ["bench", "--port", "sim", "--sim-flash", str(tiny_sim.flash), "--n", "8", "--warmup", "2",
            "--seconds", "2", "--manifest", str(sim_manifest(tiny_sim.model_dir))]
    assert cli(*args, "--out", str(out)) == 0, capsys.readouterr().err
    r = json.loads(out.read_text())
    assert r["clock"] == "host" and "host timings" in r["timings_note"]
    assert r["init"]["load_us"] > 0 and r["init"]["alloc_us"] > 0 and r["first_invoke_us"] > 0
    assert r["invoke_us"]["n"] == 8 and r["warmup"]["n"] == 2
    assert set(r["invoke_us"]) == {"n", "mean", "std", "min", "p50", "p90", "p99", "max"}
    assert r["frontend_us_per_frame"]["n"] == 3 and r["e2e_us"]["n"] == 3  # 2 s of audio: 3 patches
    assert r["rtf"]["invoke"] == pytest.approx(r["invoke_us"]["mean"] / 480_000)
    assert r["ops"] is None and "no profiler" in r["ops_note"]  # never invented on the sim
    assert 0 < r["arena"]["used"] <= r["arena"]["size"] and r["memory"]["heap_min"] > 0
    model = next(x for x in r["flash"]["regions"] if x["name"] == "model")
    assert model["partition"] == "model" and 0 < model["used"] <= 1

    r["invoke_us"] = {k: v / 100 for k, v in r["invoke_us"].items()}  # a baseline 100x faster: must regress
    base = tmp_path / "base.json"
    base.write_text(json.dumps(r))
    capsys.readouterr()
    assert cli(*args, "--baseline", str(base), "--json") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("yamflash: bench:") and "invoke_us" in err[-1]


def test_bench_needs_a_board_or_estimate(capsys):
    assert cli("bench") == 2 and "--port" in capsys.readouterr().err
