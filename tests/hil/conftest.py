"""HIL suite setup: the build under test comes from the current sources (converted model -> sim images).

For the virtual board, `yamflash gen --board sim` and `yamflash build --board sim` make the images from the
converted model, in a copy of firmware/ under build/cache/hil-<key>/ (the key covers every input).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without the plugin (registered as a pytest11 entry point, or -p yamflash.board.hil.plugin) skip, saying how."""
    if hasattr(config.option, "board_manifest"):
        return
    skip = pytest.mark.skip(reason="HIL plugin not loaded: pytest -p yamflash.board.hil.plugin tests/hil --port sim")
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(skip)

ROOT = Path(__file__).resolve().parents[2]


def _sim_build(model_dir: Path) -> Path:
    """`yamflash gen --board sim` then `yamflash build --board sim`, in a copy of firmware/ under build/cache.

    The copy keeps the repository's own generated files untouched; the key covers the model and every
    source that decides the images, so a change rebuilds.
    """
    import shutil

    from yamflash.target import build, gen

    fw_src = ROOT / "firmware"
    h = hashlib.sha256((model_dir / "model.json").read_bytes())
    pkg = ROOT / "host" / "yamflash"
    for src in sorted(pkg.rglob("*.py")) + sorted((pkg / "target" / "templates").rglob("*")):
        if src.is_file():
            h.update(src.read_bytes())
    out = ROOT / "build" / "cache" / f"hil-sim-{h.hexdigest()[:16]}"
    if (out / "sim" / "flash.json").is_file():
        return out / "sim" / "flash.json"
    fw = out / "firmware"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(fw_src, fw, ignore=shutil.ignore_patterns("generated", "spiffs", ".pio", "build"))
    gen.generate(model_dir / "model.json", gen.GenConfig(profile="sim"), fw)
    build.build(fw, out, profile="sim")
    return out / "sim" / "flash.json"


@pytest.fixture(scope="session")
def hil_flash_manifest(request: pytest.FixtureRequest, board_kind: str) -> Path:
    given = request.config.getoption("--board-manifest")
    if given:
        return Path(given)
    if board_kind != "sim":
        default = ROOT / "build" / "firmware" / "esp32s3-n16r8" / "flash.json"
        if not default.is_file():
            pytest.skip("no firmware build for the real board: run `make flash` or pass --board-manifest")
        return default
    return _sim_build(request.getfixturevalue("hil_model_dir"))


@pytest.fixture(scope="session")
def hil_model_dir(request: pytest.FixtureRequest) -> Path:
    """The converted model under test (tests/conftest.py converts once and caches it by its inputs)."""
    return Path(request.getfixturevalue("converted"))


@pytest.fixture(scope="session")
def hil_model(hil_model_dir: Path) -> dict:
    return json.loads((hil_model_dir / "model.json").read_text())


@pytest.fixture(scope="session")
def hil_mic(data_dir: Path) -> Path | None:
    clip = data_dir / "audio" / "demo" / "baby_5000ms.wav"
    return clip if clip.is_file() else None


@pytest.fixture(scope="session")
def reference(hil_model_dir: Path):
    """TFLite Micro on the host: the reference the board's outputs must equal."""
    from yamflash.model.tflm import MicroModel

    return MicroModel((hil_model_dir / "model.tflite").read_bytes())
