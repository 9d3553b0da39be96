"""`yamflash inspect` gives a clear verdict on models TFLite Micro cannot run."""

from __future__ import annotations

import json
import subprocess
import sys


def test_tf_hub_waveform_model_verdict(hub_model):
    p = subprocess.run([sys.executable, "-m", "yamflash", "inspect", str(hub_model), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["tflm_verdict"] == "cannot run"
    assert {"RFFT2D", "COMPLEX_ABS"} <= set(r["tflm_missing_ops"])
    assert f"yamflash convert --weights {hub_model}" in r["advice"]
    assert r["inputs"][0]["dtype"] == "float32"


def test_human_readable_output_names_missing_ops(hub_model):
    p = subprocess.run([sys.executable, "-m", "yamflash", "inspect", str(hub_model)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0
    assert "RFFT2D" in p.stdout and "next: make an int8 log-mel model" in p.stdout
