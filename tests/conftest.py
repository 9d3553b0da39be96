"""Shared fixtures: where the real data lives, and a converted model cached under build/ by its inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
