"""board/connect.py: "sim" or a serial port is decided in one place, and both targets answer the same calls."""

from __future__ import annotations

from pathlib import Path

import pytest
from simboard import TinySim, tiny_sim  # noqa: F401  (tiny_sim is a fixture)
from yamflash.board import connect
from yamflash.errors import UserError


def test_the_spec_picks_the_back_end(tmp_path: Path) -> None:
    sim = connect.target_from_spec("sim", sim_flash=tmp_path / "f.bin", stats_period=1.0)
    assert isinstance(sim, connect.SimTarget) and sim.flash_file == tmp_path / "f.bin"
    for spec in ("auto", "/dev/ttyACM0", "COM3"):
        assert isinstance(connect.target_from_spec(spec), connect.SerialTarget)
    for t in (sim, connect.target_from_spec("auto")):  # one interface
        assert all(callable(getattr(t, m)) for m in ("flash", "start", "open_port", "reset", "reopen_wait",
                                                     "present", "close"))


def test_what_cannot_be_connected_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="has no flash"):
        connect.SimTarget(tmp_path / "none.bin").start()
    gone = tmp_path / "ttyGONE"
    with pytest.raises(UserError, match="does not exist"):
        connect.SerialTarget(f"/dev/{gone.name}-yamflash-test").start()
    with pytest.raises(UserError, match="not valid"):
        connect.SerialTarget("/dev/x", reset_seq="X9").reset()
    assert connect.SerialTarget("/dev/x").reset(enabled=False) is None


def test_a_running_virtual_board_is_found_and_not_stopped(tiny_sim: TinySim) -> None:  # noqa: F811
    target = connect.target_from_spec("sim", sim_flash=tiny_sim.flash)
    with connect.connect(target) as board:
        assert board.info()["board"] == "sim"
    assert target.spawned is None  # it was running already: found through sim.json, left running
    assert target.reset() is connect.sim_reset  # a found board is asked to reboot over the protocol
    with connect.open_board("sim", tiny_sim.flash) as board:  # validate's and bench's way in
        assert board.command("ping")["ok"]
