"""pytest plugin: ``pytest --port sim`` or ``pytest --port /dev/ttyACM0`` gives tests a flashed, connected board.

Like pytest-embedded, the back end is an option and the tests do not change: the ``board`` fixture
flashes the current build (writing only the regions the board's flash does not hold, by MD5), opens the
console at the baud the build recorded, and yields a ``yamflash.board.client.Board``
with the HIL helpers (info, infer_wav, infer_patch, wait_detection). The build comes from the
``hil_flash_manifest`` fixture, which a suite's conftest provides (tests/hil builds one from the
converted model) or ``--board-manifest`` names. Without ``--port`` (or $ESPPORT) the HIL tests skip, saying so.

``--port`` is the device, as in every yamflash command (``--board`` was its name up to yamflash 0.1 and still
works for this release, with a deprecation warning); ``--baud`` the console's rate, ``--flash-baud`` esptool's
(default $ESPBAUD). pytest reserves one-letter lowercase options for itself, so there is no -p/-b here. With
pytest-embedded installed, which has its own ``--port`` (also the device), that option is read instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("yamflash-hil", "yamflash hardware-in-the-loop")
    # pytest-embedded's --port (the device too), when registered first, makes pytest refuse a second: read that one
    with contextlib.suppress(ValueError):
        g.addoption("--port", default=None,
                    help="the board: sim (virtual board), a serial device, or auto (find one); default $ESPPORT")
    g.addoption("--board", dest="yf_legacy_board", default=None,
                help="deprecated spelling of --port (until the next release)")
    g.addoption("--board-manifest", default=None, help="flash.json to flash (default: the suite builds one)")
    g.addoption("--board-no-flash", action="store_true", help="use the board as it is; do not flash")
    g.addoption("--baud", dest="yf_baud", type=int, default=None,
                help="console baud (default: the console_baud of the build's flash.json, else 115200)")
    g.addoption("--board-baud", dest="yf_legacy_baud", type=int, default=None,
                help="deprecated spelling of --baud (until the next release)")
    g.addoption("--flash-baud", type=int, default=None, help="esptool's baud while flashing (default $ESPBAUD, else "
                "460800)")
    g.addoption("--board-boot-timeout", type=float, default=20.0,
                help="seconds the flashed firmware has to boot and answer `info`")
    g.addoption("--hil-invoke-budget-ms", type=float, default=None,
                help="p95 invoke latency budget (default 1000 ms on a board; 5000 ms of host time on the sim, "
                     "whose reference kernels on a shared 2-core CI machine say nothing about the chip)")
    g.addoption("--hil-e2e-budget-ms", type=float, default=None,
                help="p95 end-to-end latency budget (default 1500 ms on a board, 7500 ms on the sim)")
    g.addoption("--hil-arena-budget", type=int, default=1280 * 1024,  # YAMNet on the chip: 1,160,640 B + margin
                help="tensor arena budget in bytes")
    g.addoption("--hil-detect-within-s", type=float, default=5.0,
                help="audio time by which the baby-cry clip must raise its detection")


def port_of(config: pytest.Config) -> str | None:
    """--port, else the deprecated --board, else $ESPPORT; None: no board (the HIL tests skip)."""
    import os

    return config.getoption("--port") or config.getoption("yf_legacy_board") or os.environ.get("ESPPORT") or None


def console_baud_of(config: pytest.Config) -> int | None:
    return config.getoption("yf_baud") or config.getoption("yf_legacy_baud")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hil: needs a board (--port sim or --port PORT)")
    for old, new in (("--board", "--port"), ("--board-baud", "--baud")):
        value = config.getoption(f"yf_legacy_{old.split('-')[-1]}")
        if value is not None:  # one line in pytest's warnings summary
            config.issue_config_time_warning(pytest.PytestDeprecationWarning(
                f"pytest {old} {value} is deprecated: use {new} {value} (the old spelling goes in the next "
                f"release)"), stacklevel=2)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if port_of(config):
        return
    skip = pytest.mark.skip(reason="HIL test: run with --port sim (virtual board) or --port /dev/ttyACM0")
    for item in items:
        if "hil" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def board_kind(request: pytest.FixtureRequest) -> str:
    spec = port_of(request.config)
    if not spec:
        pytest.skip("no --port given")
    return "sim" if spec == "sim" else "chip"


@pytest.fixture(scope="session")
def hil_flash_manifest(request: pytest.FixtureRequest) -> Path:
    """The build to flash; suites override this fixture to build one from the current sources."""
    path = request.config.getoption("--board-manifest")
    if not path:
        pytest.skip("no build to flash: pass --board-manifest build/firmware/<board>/flash.json")
    return Path(path)


@pytest.fixture(scope="session")
def hil_mic() -> Path | None:
    """The virtual board's microphone file (a suite overrides it; None: no microphone)."""
    return None


@pytest.fixture(scope="session")
def board(request: pytest.FixtureRequest, board_kind: str, tmp_path_factory: pytest.TempPathFactory,
          hil_mic: Path | None) -> Iterator[Any]:
    """A flashed, connected board; the virtual one runs in its own process for the whole session."""
    from .. import flash as fl
    from ..connect import SimTarget, connect, target_from_spec

    spec = port_of(request.config)
    assert spec is not None  # board_kind skipped otherwise
    flash_file = tmp_path_factory.mktemp("sim") / "flash.bin"  # the virtual board's, this session's own
    target = target_from_spec(spec, sim_flash=flash_file, mic=hil_mic, loop=True, stats_period=1.0, fresh=True)
    sim = isinstance(target, SimTarget)
    no_flash = not sim and request.config.getoption("--board-no-flash")  # the virtual board always gets the build
    given = request.config.getoption("--board-manifest")
    manifest = (Path(given) if given else None) if no_flash else request.getfixturevalue("hil_flash_manifest")
    baud = console_baud_of(request.config) or (fl.console_baud(manifest) if manifest else 115200)
    if not no_flash:
        from ..options import flash_baud

        esptool = {} if sim else {"baud": flash_baud(request.config.getoption("--flash-baud")),
                                  "progress": fl.progress_printer()}
        target.flash(fl.load_plan(manifest), False, print, **esptool)
    if not sim:
        print(f"console {target.start()} at {baud} baud")
    with connect(target, baud, timeout=None if sim else request.config.getoption("--board-boot-timeout")) as b:
        yield b
