"""`yamflash flash` without hardware: the plan from a flash manifest, the esptool calls it makes (fakes),
and the virtual board's flash file."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from esptool.util import FatalError
from yamflash import flash as fl
from yamflash import partitions as P
from yamflash import ports
from yamflash.errors import UserError

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
    """Records what yamflash asks of esptool.cmds; can play a wrong chip, small flash or bad verify."""

    def __init__(self, chip: str = "ESP32-S3", flash: str = "16MB", md5_failures: int = 0):
        self.calls: list[tuple] = []
        self.chip, self.flash, self.md5_failures = chip, flash, md5_failures

    def detect_chip(self, port, baud, connect_mode):
        self.calls.append(("detect_chip", port, connect_mode))
        return SimpleNamespace(CHIP_NAME=self.chip, _port=SimpleNamespace(close=lambda: None))

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

    def reset_chip(self, esp, mode):
        self.calls.append(("reset_chip", mode))


def test_plan_reads_offsets_and_model_sha(tmp_path):
    plan = fl.load_plan(make_build(tmp_path))
    assert [(r.name, r.offset) for r in plan.regions] == [
        ("bootloader", 0), ("partition-table", 0x8000), ("app", 0x10000), ("model", 0x110000)]
    import hashlib

    assert plan.model_sha256 == hashlib.sha256(MODEL).hexdigest()
    assert [r.name for r in plan.only(("model",)).regions] == ["model"]


def test_esptool_calls_and_offsets(tmp_path):
    fake = FakeCmds()
    fl.flash_esptool(fl.load_plan(make_build(tmp_path)), "/dev/ttyACM0", cmds=fake, say=lambda s: None)
    names = [c[0] for c in fake.calls]
    assert names == ["detect_chip", "run_stub", "attach_flash", "detect_flash_size", "write_flash", "reset_chip"]
    write = fake.calls[4]
    assert [a for a, _ in write[1]] == [0, 0x8000, 0x10000, 0x110000]
    assert write[2] == "keep" and fake.calls[-1] == ("reset_chip", "hard-reset")


def test_model_only_writes_one_region(tmp_path):
    fake = FakeCmds()
    fl.flash_esptool(fl.load_plan(make_build(tmp_path)).only(("model",)), "p", cmds=fake, say=lambda s: None)
    assert [c for c in fake.calls if c[0] == "write_flash"][0][1] == [(0x110000, 64 + len(MODEL))]


@pytest.mark.parametrize("chip", ["ESP32", "ESP32-S2"])
def test_wrong_chip(tmp_path, chip):
    fake = FakeCmds(chip=chip)
    with pytest.raises(UserError, match="not an ESP32-S3"):
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
    assert sum(c[0] == "write_flash" for c in ok.calls) == 2
    bad = FakeCmds(md5_failures=2)
    with pytest.raises(UserError, match="verification failed twice"):
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


def test_up_to_date_compares_fw_and_model(tmp_path):
    plan = fl.load_plan(make_build(tmp_path))
    assert fl.up_to_date(plan, {"fw": "t1", "model_sha256": plan.model_sha256})
    assert not fl.up_to_date(plan, {"fw": "t0", "model_sha256": plan.model_sha256})
    assert not fl.up_to_date(plan, {"fw": "t1", "model_sha256": "0" * 64})
    assert not fl.up_to_date(plan, None)


def test_sim_flash_file_boots(tmp_path):
    from yamflash.sim.boot import BootError, boot

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
