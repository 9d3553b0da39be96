"""pytest plugin: ``pytest --board sim`` or ``pytest --board /dev/ttyACM0`` gives tests a flashed, connected board.

Like pytest-embedded, the back end is an option and the tests do not change: the ``board`` fixture
flashes the current build (writing only the regions the board's flash does not hold, by MD5), opens the
console at the baud the build recorded, and yields a ``yamflash.board.Board``
with the HIL helpers (info, infer_wav, infer_patch, wait_detection). The build comes from the
``hil_flash_manifest`` fixture, which a suite's conftest provides (tests/hil builds one from the
converted model) or ``--board-manifest`` names. Without ``--board`` the HIL tests skip, saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("yamflash-hil", "yamflash hardware-in-the-loop")
    g.addoption("--board", default=None, help="sim (virtual board) or a serial device (auto: find one)")
    g.addoption("--board-manifest", default=None, help="flash.json to flash (default: the suite builds one)")
    g.addoption("--board-no-flash", action="store_true", help="use the board as it is; do not flash")
    g.addoption("--board-baud", type=int, default=None,
                help="console baud (default: the console_baud of the build's flash.json, else 115200)")
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hil: needs a board (--board sim or --board PORT)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--board"):
        return
    skip = pytest.mark.skip(reason="HIL test: run with --board sim (virtual board) or --board /dev/ttyACM0")
    for item in items:
        if "hil" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def board_kind(request: pytest.FixtureRequest) -> str:
    spec = request.config.getoption("--board")
    if not spec:
        pytest.skip("no --board given")
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
    from yamflash import flash as fl
    from yamflash import ports
    from yamflash.board import Board

    spec = request.config.getoption("--board")
    no_flash = request.config.getoption("--board-no-flash")
    say = print
    if board_kind == "sim":
        from yamflash.sim.process import spawn

        flash_file = tmp_path_factory.mktemp("sim") / "flash.bin"
        fl.flash_sim(fl.load_plan(request.getfixturevalue("hil_flash_manifest")), flash_file)
        proc = spawn(flash_file, mic=hil_mic, loop=True, stats_period=1.0)
        b = Board(ports.open_serial(proc.pty), name="sim")
        try:
            b.info()
            yield b
        finally:
            b.close()
            proc.stop()
        return
    manifest = None if no_flash else request.getfixturevalue("hil_flash_manifest")
    if manifest is None and request.config.getoption("--board-manifest"):
        manifest = Path(request.config.getoption("--board-manifest"))
    baud = request.config.getoption("--board-baud") or (fl.console_baud(manifest) if manifest else 115200)
    if manifest is not None and not no_flash:
        plan = fl.load_plan(manifest)
        device = fl.flash_board_cli(plan, spec, 460800, False, say, progress=fl.progress_printer())
    else:
        target = ports.resolve(spec)
        device = target.device if isinstance(target, ports.Candidate) else str(target)
    say(f"console {device} at {baud} baud")
    b = Board(ports.open_serial(device, baud=baud), name=device)
    try:
        b.command("info", timeout=request.config.getoption("--board-boot-timeout"))
        yield b
    finally:
        b.close()
