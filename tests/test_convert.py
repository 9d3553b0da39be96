"""The converted model: what the manifest promises is what the .tflite is."""

from __future__ import annotations

import hashlib
import json

import numpy as np
from yamflash import manifest
from yamflash.chip.inspect import inspect
from yamflash.model.tflm import MicroModel


def test_model_is_int8_patch_in_scores_out(converted):
    m = manifest.load(converted / "model.json")
    data = (converted / "model.tflite").read_bytes()
    assert m["model"]["sha256"] == hashlib.sha256(data).hexdigest() and m["model"]["bytes"] == len(data)
    r = inspect(converted / "model.tflite", measure_arena=False)
    assert r["inputs"][0]["dtype"] == "int8" and r["inputs"][0]["shape"] == [1, 96, 64]
    assert r["outputs"][0]["dtype"] == "int8" and r["outputs"][0]["shape"] == [1, 521]
    assert r["tflm_missing_ops"] == [] and r["compute_types"] == ["int8"]
    assert m["input"]["scale"] == r["inputs"][0]["scale"] and m["input"]["zero_point"] == r["inputs"][0]["zero_point"]
    assert m["output"]["scale"] == 1 / 256 and m["output"]["zero_point"] == -128
    assert sorted(r["op_counts"]) == m["ops"]


def test_manifest_records_provenance_and_fidelity(converted):
    m = json.loads((converted / "model.json").read_text())
    assert len(m["labels"]) == 521 and m["labels"][0] == "Speech"
    assert m["weights"]["sha256"] and m["weights"]["mapping_check"]["checked"]
    assert m["calibration"]["synthetic"] is False and m["calibration"]["patches"] > 0
    fid = m["fidelity"]
    for key in ("top1_agreement", "top5_overlap", "cosine_mean", "mae", "max_abs_error"):
        assert 0.0 <= fid[key] <= 1.0
    assert fid["patches"] > 100  # every patch of the 30 % of clips held out
    # The host's reference-kernel arena of the graph convert wrote: the chip layout's rewrites (1x1 convs split
    # along output channels, joined by CONCATENATION) keep more tensors alive at once than the plain graph's
    # 247,216 B (314,832 B measured), in exchange for ESP-NN scratch of <= 32 KB instead of 1 MiB.
    assert 0 < m["arena_bytes"] <= 320 * 1024
    chip = m["arena"].get("chip_espnn")
    assert chip is None or m["arena_bytes"] <= chip <= 400 * 1024  # was 1,160,640 B before the rewrites
    assert 60e6 < m["macs_per_patch"] < 80e6 and 3.5e6 < m["parameters"] < 4e6


def test_tflm_runs_model_deterministically(converted):
    micro = MicroModel((converted / "model.tflite").read_bytes())
    q = np.random.default_rng(0).integers(-128, 128, (96, 64)).astype(np.int8)
    a, b = micro.run_int8(q), micro.run_int8(q)
    assert a.dtype == np.int8 and a.shape == (521,) and np.array_equal(a, b)


def test_arena_measurement_is_the_minimum(converted):
    import pytest
    from yamflash.errors import UserError
    from yamflash.model.tflm import arena_bytes

    data = (converted / "model.tflite").read_bytes()
    need = json.loads((converted / "model.json").read_text())["arena_bytes"]
    assert arena_bytes(data) == need
    MicroModel(data, arena_size=need)
    with pytest.raises(UserError):
        MicroModel(data, arena_size=need - 4096).run_int8(np.zeros((96, 64), np.int8))
