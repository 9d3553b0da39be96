"""`yamflash flash` without hardware: the plan from a flash manifest, the esptool calls it makes (fakes),
and the virtual board's flash file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from esptool.util import FatalError
from yamflash.board import flash as fl
from yamflash.board import ports
from yamflash.board.connect import SimTarget
from yamflash.errors import UserError
from yamflash.target import partitions as P

MODEL = bytes(range(256)) * 40


def make_build(tmp: Path, model: bytes = MODEL, model_part: int | None = None, flash_size: str = "16MB") -> Path:
    img = P.model_image(model)
    parts = P.resolve([P.Partition("nvs", 1, 2, 0x6000), P.Partition("factory", 0, 0, 0x100000),
                       P.Partition("model", 1, 0x40, model_part or P.align_up(len(img), 0x1000))])
    files = {"bootloader": (0, b"\xe9boot"), "partition-table": (0x8000, P.to_binary(parts)),
             "app": (0x10000, json.dumps({"fw": "t1"}).encode()), "model": (0x110000, img)}
    for n, (_, data) in files.items():
        (tmp / f"{n}.bin").write_bytes(data)
    doc = {"chip": "esp32s3", "flash_size": flash_size, "fw": "t1",
           "files": [{"name": n, "offset": f"0x{o:x}", "file": f"{n}.bin"} for n, (o, _) in files.items()]}
    (tmp / "flash.json").write_text(json.dumps(doc))
    return tmp / "flash.json"


class FakeCmds:
    """Records what yamflash asks of esptool.cmds and keeps a flash the fake board's MD5 reads; can play a wrong
    chip, a small flash or a bad verify."""

    def __init__(self, chip: str = "ESP32-S3", flash: str = "16MB", md5_failures: int = 0):
        self.calls: list[tuple] = []
        self.chip, self.flash, self.md5_failures = chip, flash, md5_failures
        self.mem = bytearray(b"\xff" * (16 << 20))

    def md5(self, addr, size):
        self.calls.append(("flash_md5sum", addr, size))
        return hashlib.md5(bytes(self.mem[addr : addr + size])).hexdigest()

    def detect_chip(self, port, baud, connect_mode):
        self.calls.append(("detect_chip", port, connect_mode))
        return SimpleNamespace(CHIP_NAME=self.chip, _port=SimpleNamespace(close=lambda: None),
                               flash_md5sum=self.md5)

    def run_stub(self, esp):
        self.calls.append(("run_stub",))
        return esp

    def attach_flash(self, esp):
        self.calls.append(("attach_flash",))

    def detect_flash_size(self, esp):
        self.calls.append(("detect_flash_size",))
        return self.flash

    def write_flash(self, esp, addr_data, **kw):
        self.calls.append(("write_flash", [(a, len(d)) for a, d in addr_data], kw.get("flash_size")))
        if self.md5_failures:
            self.md5_failures -= 1
            raise FatalError("MD5 of file does not match data in flash!")
        for a, d in addr_data:
            self.mem[a : a + len(d)] = d

    def reset_chip(self, esp, mode):
        self.calls.append(("reset_chip", mode))

    def writes(self):
        return [c[1] for c in self.calls if c[0] == "write_flash"]


def test_plan_reads_offsets_and_model_sha(tmp_path):
    plan = fl.load_plan(make_build(tmp_path))
    assert [(r.name, r.offset) for r in plan.regions] == [
        ("bootloader", 0), ("partition-table", 0x8000), ("app", 0x10000), ("model", 0x110000)]
    import hashlib

    assert plan.model_sha256 == hashlib.sha256(MODEL).hexdigest()
    assert [r.name for r in plan.only(("model",)).regions] == ["model"]


def test_esptool_calls_and_offsets(tmp_path):
    fake = FakeCmds()
    plan = fl.load_plan(make_build(tmp_path))
    assert fl.flash_esptool(plan, "/dev/ttyACM0", cmds=fake, say=lambda s: None) == plan.regions
    names = [c[0] for c in fake.calls]
    assert names[:4] == ["detect_chip", "run_stub", "attach_flash", "detect_flash_size"]
    assert names[4:8] == ["flash_md5sum"] * 4 and names[-1] == "reset_chip"
    assert [w[0][0] for w in fake.writes()] == [0, 0x8000, 0x10000, 0x110000]  # one verified write per region
    assert all(c[2] == "keep" for c in fake.calls if c[0] == "write_flash")
    assert fake.calls[-1] == ("reset_chip", "hard-reset")


def test_only_regions_the_flash_does_not_hold_are_written(tmp_path):
    """The skip is decided by the MD5 of the board's flash, region by region, never by version strings."""
    fake = FakeCmds()
    plan = fl.load_plan(make_build(tmp_path))
    fl.flash_esptool(plan, "p", cmds=fake, say=lambda s: None)
    fake.calls.clear()
    said: list[str] = []
    assert fl.flash_esptool(plan, "p", cmds=fake, say=said.append) == []
    assert fake.writes() == [] and fake.calls[-1] == ("reset_chip", "hard-reset")  # reset back into the app
    assert sum("already in flash (MD5 matches)" in s for s in said) == 4
    fake.mem[0x10000 + 3] ^= 0xFF  # one byte of the app differs: only the app goes again
    assert [r.name for r in fl.flash_esptool(plan, "p", cmds=fake, say=lambda s: None)] == ["app"]
    fake.calls.clear()
    assert len(fl.flash_esptool(plan, "p", cmds=fake, say=lambda s: None, force=True)) == 4
    assert not any(c[0] == "flash_md5sum" for c in fake.calls)  # --force: written without asking


def test_model_only_writes_one_region(tmp_path):
    fake = FakeCmds()
    fl.flash_esptool(fl.load_plan(make_build(tmp_path)).only(("model",)), "p", cmds=fake, say=lambda s: None)
    assert fake.writes() == [[(0x110000, 64 + len(MODEL))]]


@pytest.mark.parametrize("chip", ["ESP32", "ESP32-S2"])
def test_wrong_chip(tmp_path, chip):
    fake = FakeCmds(chip=chip)
    with pytest.raises(UserError, match=f"is an {chip}, but this build is for an ESP32-S3 .*nothing was written"):
        fl.flash_esptool(fl.load_plan(make_build(tmp_path)), "p", cmds=fake, say=lambda s: None)
    assert not any(c[0] == "write_flash" for c in fake.calls)


def test_flash_smaller_than_table(tmp_path):
    fake = FakeCmds(flash="4MB")
    plan = fl.load_plan(make_build(tmp_path, model=b"x" * (5 << 20)))
    with pytest.raises(UserError, match="needs .* bytes of flash"):
        fl.flash_esptool(plan, "p", cmds=fake, say=lambda s: None)
    assert not any(c[0] == "write_flash" for c in fake.calls)


def test_model_larger_than_partition(tmp_path):
    with pytest.raises(UserError, match="model image is .* partition 'model' holds"):
        fl.load_plan(make_build(tmp_path, model_part=0x1000))


def test_verify_failure_retries_once_then_stops(tmp_path):
    plan = fl.load_plan(make_build(tmp_path))
    ok = FakeCmds(md5_failures=1)
    fl.flash_esptool(plan, "p", cmds=ok, say=lambda s: None)
    assert [w[0][0] for w in ok.writes()] == [0, 0, 0x8000, 0x10000, 0x110000]  # the bootloader twice
    bad = FakeCmds(md5_failures=2)
    with pytest.raises(UserError, match="verification of bootloader failed twice"):
        fl.flash_esptool(plan, "p", cmds=bad, say=lambda s: None)
    assert not any(c[0] == "reset_chip" for c in bad.calls)


def test_connect_errors_become_advice(tmp_path):
    class NoBoard(FakeCmds):
        def detect_chip(self, *a, **k):
            raise FatalError("Failed to connect to ESP32-S3: No serial data received.")

    class Busy(FakeCmds):
        def detect_chip(self, *a, **k):
            raise OSError(16, "could not open port /dev/ttyACM0: [Errno 16] Device or resource busy")

    plan = fl.load_plan(make_build(tmp_path))
    with pytest.raises(UserError, match="hold BOOT"):
        fl.flash_esptool(plan, "p", cmds=NoBoard(), say=lambda s: None)
    with pytest.raises(UserError, match="busy"):
        fl.flash_esptool(plan, "p", cmds=Busy(), say=lambda s: None)


def test_flash_size_in_the_build_larger_than_the_boards_is_refused(tmp_path):
    fake = FakeCmds(flash="4MB")
    plan = fl.load_plan(make_build(tmp_path))  # a small table, but built for 16 MB
    with pytest.raises(UserError, match="this build is for 16 MB of flash but the board on p has 4 MB"):
        fl.flash_esptool(plan, "p", cmds=fake, say=lambda s: None)
    assert fake.writes() == []


def test_sim_skip_is_decided_by_the_flash_files_bytes(tmp_path):
    plan = fl.load_plan(make_build(tmp_path))
    flash_file = tmp_path / "flash.bin"
    assert fl.sim_differs(plan, flash_file) == plan.regions  # no flash file: everything differs
    fl.flash_sim(plan, flash_file)
    assert fl.sim_differs(plan, flash_file) == []
    said: list[str] = []
    SimTarget(flash_file).flash(plan, False, said.append)
    assert "nothing to do" in said[-1]
    raw = bytearray(flash_file.read_bytes())
    raw[0x110000 + 100] ^= 1  # same firmware and model names, different bytes: the model goes again
    flash_file.write_bytes(bytes(raw))
    said.clear()
    SimTarget(flash_file).flash(plan, False, said.append)
    assert [s.split()[0] for s in said if s.endswith(": written")] == ["model"]
    assert fl.sim_differs(plan, flash_file) == []


def test_sim_flash_file_boots(tmp_path):
    from yamflash.board.sim.boot import BootError, boot

    plan = fl.load_plan(make_build(tmp_path))
    flash_file = tmp_path / "flash.bin"
    fl.flash_sim(plan, flash_file)
    assert flash_file.stat().st_size == 16 << 20
    img = boot(flash_file)
    assert img.model == MODEL and img.fw == "t1"
    raw = bytearray(flash_file.read_bytes())
    raw[0x110000 + 64 + 5] ^= 0xFF  # one flipped model byte: the sha256 check must refuse to boot
    flash_file.write_bytes(bytes(raw))
    with pytest.raises(BootError, match="sha256"):
        boot(flash_file)
    raw[0x8000] = 0  # a broken partition table
    flash_file.write_bytes(bytes(raw))
    with pytest.raises(BootError, match="partition table"):
        boot(flash_file)


def _port(dev, vid, pid, sn=None):
    return SimpleNamespace(device=dev, vid=vid, pid=pid, serial_number=sn, description="")


def test_port_discovery():
    found = [_port("/dev/ttyUSB0", 0x10C4, 0xEA60), _port("/dev/ttyS0", None, None),
             _port("/dev/ttyACM0", 0x303A, 0x1001, "AB")]
    assert [c.device for c in ports.candidates(found)] == ["/dev/ttyACM0", "/dev/ttyUSB0"]
    with pytest.raises(UserError, match="several boards"):
        ports.resolve("auto", ports=found)
    picked = ports.resolve("auto", ask=lambda c: c[1], ports=found)
    assert picked.device == "/dev/ttyUSB0"
    with pytest.raises(UserError, match="no ESP32-S3 board found"):
        ports.resolve("auto", ports=[_port("/dev/ttyS0", None, None)])
    assert ports.resolve("/dev/x") == "/dev/x"


def test_wait_for_reenumeration():
    seq = iter([[], [], [_port("/dev/ttyACM1", 0x303A, 0x1001, "AB")]])
    cand = ports.Candidate("/dev/ttyACM0", 0x303A, 0x1001, "native", "AB")
    assert ports.wait_for(cand, timeout=5, poll=0.01, ports=lambda: next(seq)) == "/dev/ttyACM1"
    with pytest.raises(UserError, match="did not come back"):
        ports.wait_for(cand, timeout=0.05, poll=0.01, ports=lambda: [])


def test_new_detector_settings_reach_the_virtual_board(tmp_path, monkeypatch):
    """Issue 13, finding 1, as a user types it: after a flash, `gen --watch Dog && build && flash --port sim` must
    re-flash (the old skip compared only firmware version and model sha, said "nothing to do", and the board kept
    watching class 0)."""
    import shutil

    from simboard import cli
    from test_gen import make_model
    from yamflash.board.sim.boot import boot

    root = Path(__file__).resolve().parents[1]
    shutil.copytree(root / "firmware", tmp_path / "firmware",
                    ignore=shutil.ignore_patterns("generated", "spiffs", ".pio", "build", "sdkconfig*"))
    make_model(tmp_path / "build" / "model")
    monkeypatch.chdir(tmp_path)
    for step in (["gen", "--board", "sim"], ["build", "--board", "sim"], ["flash", "--port", "sim", "--board", "sim"]):
        assert cli(*step) == 0, step
    assert boot("build/sim/flash.bin").meta["detector"]["classes"] == [0]  # Speech, the default

    flash_out: list[str] = []
    for step in (["gen", "--board", "sim", "--watch", "Dog"], ["build", "--board", "sim"]):
        assert cli(*step) == 0, step
    import click

    monkeypatch.setattr(click, "echo", lambda msg="", *a, **k: flash_out.append(str(msg)))
    assert cli("flash", "--port", "sim", "--board", "sim") == 0
    assert not any("nothing to do" in s for s in flash_out), flash_out
    assert any(s.split()[:1] == ["app"] and s.endswith(": written") for s in flash_out), flash_out
    assert boot("build/sim/flash.bin").meta["detector"]["classes"] == [69]  # Dog
    flash_out.clear()
    assert cli("flash", "--port", "sim", "--board", "sim") == 0
    assert any("nothing to do" in s for s in flash_out), flash_out  # and now it really is up to date
