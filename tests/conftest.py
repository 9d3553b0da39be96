"""Shared fixtures: where the real data lives, and a converted model cached under build/ by its inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from make_args import convert_args

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("YAMFLASH_DATA", ROOT.parent / "shared" / "data"))


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test data {path} is absent (set YAMFLASH_DATA to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return need(DATA)


@pytest.fixture(scope="session")
def drq_model(data_dir: Path) -> Path:
    return need(data_dir / "models" / "yamnet_keras_drq_logmel_out.tflite")


@pytest.fixture(scope="session")
def hub_model(data_dir: Path) -> Path:
    return need(data_dir / "models" / "lite-model_yamnet_classification_tflite_1.tflite")


@pytest.fixture(scope="session")
def class_map(data_dir: Path) -> Path:
    return need(data_dir / "models" / "yamnet_class_map.csv")


@pytest.fixture(scope="session")
def esc50_dir(data_dir: Path) -> Path:
    return need(data_dir / "audio" / "esc50-16k-dev" / "audio")


@pytest.fixture(scope="session")
def demo_dir(data_dir: Path) -> Path:
    return need(data_dir / "audio" / "demo")


@pytest.fixture(scope="session")
def converted(drq_model: Path, esc50_dir: Path, class_map: Path) -> Path:
    """The real YAMNet converted once with the default recipe, cached under build/cache by its inputs.

    The command is `make convert`'s with the test data's weights (calibration on the ESC-50 clips, 30 % of
    files held out for the fidelity report), so `make demo` after `make test` finds it in yamflash's own
    conversion cache (~/.cache/yamflash) instead of converting again.
    """
    import hashlib
    import subprocess
    import sys

    from yamflash.convert.cache import code_digest  # the conversion cache's own rule for "same code"

    args = convert_args(drq_model, esc50_dir, class_map)
    key = hashlib.sha256((" ".join(args) + code_digest()).encode()).hexdigest()[:16]
    out = ROOT / "build" / "cache" / f"model-{key}"
    if not (out / "model.json").is_file():
        p = subprocess.run([sys.executable, "-m", "yamflash", "convert", *args, "--out", str(out)],
                           capture_output=True, text=True, timeout=1800)
        assert p.returncode == 0, p.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def native():
    """yf_core built for this host, through its ctypes binding (skips where no C compiler is found)."""
    from yamflash.target import native as n

    try:
        n.lib()
    except Exception as exc:  # no compiler: the C side cannot be checked here
        pytest.skip(f"yf_core cannot be built for the host: {exc}")
    return n
