"""`yamflash build`: the commands it runs, the fast offline failure, the flash manifest's offsets, the binary
partition table (ESP-IDF's gen_esp32part format), the sim profile's images, and platformio.ini parsing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest
from test_gen import firmware_dir, make_model
from yamflash.errors import UserError
from yamflash.target import build, gen, partitions

ROOT = Path(__file__).resolve().parents[1]


def generated(tmp: Path, **cfg: object) -> Path:
    fw = firmware_dir(tmp)
    gen.generate(make_model(tmp / "model"), gen.GenConfig(**cfg), fw)  # type: ignore[arg-type]
    return fw


def offline(host: tuple[str, int]) -> bool:
    return False


# ---- commands --------------------------------------------------------------------------------------


def test_pio_commands_build_app_then_spiffs_image(tmp_path: Path) -> None:
    fw = generated(tmp_path, storage="spiffs")
    g = build.load_generated(fw, None)
    assert build.pio_commands("pio", fw, g) == [
        ["pio", "run", "-d", str(fw), "-e", "esp32s3-n16r8"],
        ["pio", "run", "-d", str(fw), "-e", "esp32s3-n16r8", "-t", "buildfs"],
    ]


def test_pio_commands_without_spiffs_for_partition_storage(tmp_path: Path) -> None:
    fw = generated(tmp_path, profile="esp32s3-n8r2", storage="partition")
    g = build.load_generated(fw, "esp32s3-n8r2")
    assert build.pio_commands("pio", fw, g) == [["pio", "run", "-d", str(fw), "-e", "esp32s3-n8r2"]]


def test_idf_commands_use_a_build_folder_per_profile(tmp_path: Path) -> None:
    fw = generated(tmp_path)
    g = build.load_generated(fw, None)
    b = fw / "build" / "esp32s3-n16r8"
    assert build.idf_commands("idf.py", fw, g) == [
        ["idf.py", "-C", str(fw), "-B", str(b), "-DIDF_TARGET=esp32s3", f"-DSDKCONFIG={b / 'sdkconfig'}", "build"]]


def test_profile_mismatch_says_to_run_gen(tmp_path: Path) -> None:
    fw = generated(tmp_path)
    with pytest.raises(UserError, match="gen --board esp32s3-n8r2"):
        build.build(fw, tmp_path / "out", profile="esp32s3-n8r2")


def test_streaming_runner_passes_lines_and_fails_clearly() -> None:
    lines: list[str] = []
    build.run_streaming(["sh", "-c", "echo one; echo two >&2"], lines.append)
    assert lines[1:] == ["one", "two"]
    with pytest.raises(UserError, match="exit 3"):
        build.run_streaming(["sh", "-c", "exit 3"], lines.append)


# ---- missing toolchain: one clear error, at once ---------------------------------------------------


def test_missing_platformio_is_immediate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fw = generated(tmp_path)
    monkeypatch.setattr(build, "find_tool", lambda name: None)
    t0 = time.monotonic()
    with pytest.raises(UserError, match="pip install platformio"):
        build.build(fw, tmp_path / "out", online=offline)
    assert time.monotonic() - t0 < 2


def test_missing_platform_offline_is_immediate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fw = generated(tmp_path, storage="spiffs")
    fake = tmp_path / "bin" / "pio"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho should not run; exit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(build, "find_tool", lambda name: str(fake) if name == "pio" else None)
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(tmp_path / "core"))
    t0 = time.monotonic()
    with pytest.raises(UserError) as e:
        build.build(fw, tmp_path / "out", online=offline)
    assert time.monotonic() - t0 < 2
    msg = str(e.value)
    assert "espressif32@6.12.0" in msg and "toolchain-xtensa-esp-elf" in msg and "cannot download" in msg
    assert "tool-mkspiffs" in msg
    assert "\n" not in msg


def test_installed_platform_is_recognised(tmp_path: Path) -> None:
    core = tmp_path / "core"
    (core / "platforms" / "espressif32").mkdir(parents=True)
    (core / "platforms" / "espressif32" / "platform.json").write_text(json.dumps({"version": "6.12.0"}))
    for pkg in build.PIO_PACKAGES:
        (core / "packages" / pkg).mkdir(parents=True)
        (core / "packages" / pkg / "package.json").write_text("{}")
    assert build.pio_missing(core) == []
    (core / "platforms" / "espressif32" / "platform.json").write_text(json.dumps({"version": "6.5.0"}))
    assert build.pio_missing(core) == ["platform espressif32@6.12.0 (installed: 6.5.0)"]


def test_missing_esp_idf_is_immediate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fw = generated(tmp_path)
    monkeypatch.delenv("IDF_PATH", raising=False)
    monkeypatch.setattr(build, "find_tool", lambda name: None)
    with pytest.raises(UserError, match="export.sh"):
        build.build(fw, tmp_path / "out", tool="idf", online=offline)


def test_network_probe_gives_up_quickly() -> None:
    t0 = time.monotonic()
    build.network_available(("192.0.2.1", 9), timeout=0.5)  # TEST-NET-1: never answers
    assert time.monotonic() - t0 < 1.5


@pytest.mark.skipif(shutil.which("pio") is None and not (Path(os.sys.executable).parent / "pio").exists(),
                    reason="PlatformIO is not installed")
def test_cli_build_without_platform_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from yamflash.cli import main

    fw = generated(tmp_path)
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(tmp_path / "empty-core"))
    monkeypatch.setattr(build, "network_available", offline)
    t0 = time.monotonic()
    rc = main(["build", "--firmware", str(fw), "--out", str(tmp_path / "out")])
    assert rc == 2 and time.monotonic() - t0 < 5
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# ---- flash manifest --------------------------------------------------------------------------------


def fake_pio_outputs(fw: Path, env: str, table_offset: int = 0x8000) -> dict[str, bytes]:
    """What `pio run` + `pio run -t buildfs` leave in .pio/build/<env>/ (contents made up, sizes plausible)."""
    b = fw / ".pio" / "build" / env
    b.mkdir(parents=True)
    parts = partitions.resolve(partitions.from_csv((fw / "partitions.csv").read_text()), table_offset)
    files = {"bootloader.bin": b"\xe9" + b"B" * 20000, "partitions.bin": partitions.to_binary(parts),
             "firmware.bin": b"\xe9" + b"A" * 900_000, "spiffs.bin": b"S" * parts[-1].size}
    for name, data in files.items():
        (b / name).write_bytes(data)
    return files


@pytest.mark.parametrize("table_offset", [0x8000, 0x9000])
def test_flash_manifest_offsets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table_offset: int) -> None:
    fw = generated(tmp_path, storage="spiffs")
    (fw / "sdkconfig.esp32s3-n16r8").write_text(f"CONFIG_PARTITION_TABLE_OFFSET=0x{table_offset:x}\n")
    files = fake_pio_outputs(fw, "esp32s3-n16r8", table_offset)
    ran: list[list[str]] = []
    monkeypatch.setattr(build, "check_toolchain", lambda tool, fw, online, spiffs=False: "pio")
    monkeypatch.setattr(build, "run_streaming", lambda cmd, echo, env=None: ran.append(cmd))
    m = build.build(fw, tmp_path / "out", online=offline)
    assert [c[-1] for c in ran] == ["esp32s3-n16r8", "buildfs"]
    expected_nvs = table_offset + 0x1000
    app_off = partitions.align_up(expected_nvs + 0x6000 + 0x1000, 0x10000)
    got = {f["role"]: f["offset"] for f in m["files"]}
    assert got == {"bootloader": "0x0", "partition-table": f"0x{table_offset:x}", "app": f"0x{app_off:x}",
                   "model": f"0x{app_off + 0x200000:x}"}
    assert m["chip"] == "esp32s3" and m["flash_size"] == "16MB" and m["flash_mode"] == "qio"
    assert m["flash_freq"] == "80m" and m["firmware_version"] and len(m["model_sha256"]) == 64
    model = next(f for f in m["files"] if f["role"] == "model")
    assert model["partition"] == "model"
    out = tmp_path / "out" / "esp32s3-n16r8"
    assert json.loads((out / "flash.json").read_text()) == m
    assert (out / "app.bin").read_bytes() == files["firmware.bin"]
    assert model["sha256"] == hashlib.sha256(files["spiffs.bin"]).hexdigest()


def test_app_larger_than_its_partition_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fw = generated(tmp_path)
    fake_pio_outputs(fw, "esp32s3-n16r8")
    (fw / ".pio/build/esp32s3-n16r8/firmware.bin").write_bytes(b"\xe9" * (0x200000 + 1))
    monkeypatch.setattr(build, "check_toolchain", lambda tool, fw, online, spiffs=False: "pio")
    monkeypatch.setattr(build, "run_streaming", lambda cmd, echo, env=None: None)
    with pytest.raises(UserError, match="its partition 'factory' holds 2,097,152"):
        build.build(fw, tmp_path / "out")


# ---- binary partition table ------------------------------------------------------------------------


def test_binary_table_matches_gen_esp32part_format() -> None:
    parts = partitions.resolve([partitions.Partition("nvs", 1, 2, 0x6000),
                                partitions.Partition("factory", 0, 0, 0x100000, flags=("readonly",))])
    blob = partitions.to_binary(parts)
    assert len(blob) == 0xC00
    # entry: magic AA 50, type, subtype, offset, size, 16-byte label, flags (gen_esp32part STRUCT_FORMAT)
    assert blob[:32] == b"\xaa\x50\x01\x02" + struct.pack("<LL", 0x9000, 0x6000) + b"nvs".ljust(16, b"\0") + \
        b"\0\0\0\0"
    assert blob[32:36] == b"\xaa\x50\x00\x00" and struct.unpack_from("<L", blob, 60)[0] == 2  # readonly = bit 1
    assert blob[64:80] == b"\xeb\xeb" + b"\xff" * 14 and blob[80:96] == hashlib.md5(blob[:64]).digest()
    assert blob[96:] == b"\xff" * (0xC00 - 96)
    assert partitions.from_binary(blob) == parts


def test_binary_table_rejects_corruption(tmp_path: Path) -> None:
    fw = generated(tmp_path)
    parts = partitions.resolve(partitions.from_csv((fw / "partitions.csv").read_text()))
    blob = bytearray(partitions.to_binary(parts))
    assert partitions.from_binary(bytes(blob)) == parts
    blob[10] ^= 1
    with pytest.raises(ValueError, match="MD5"):
        partitions.from_binary(bytes(blob))


def test_model_image_round_trip_and_checks() -> None:
    model = bytes(range(256)) * 10
    img = partitions.model_image(model)
    assert img[:8] == b"YFMODEL\0" and len(img) == 64 + len(model)
    got, head = partitions.read_model_image(img + b"\xff" * 100)
    assert got == model and head["sha256"] == hashlib.sha256(model).hexdigest()
    bad = bytearray(img)
    bad[100] ^= 1
    with pytest.raises(ValueError, match="sha256"):
        partitions.read_model_image(bytes(bad))


# ---- sim profile -----------------------------------------------------------------------------------


def test_sim_build_lays_out_the_same_flash(tmp_path: Path) -> None:
    fw = generated(tmp_path, profile="sim")
    m = build.build(fw, tmp_path / "out", tool="pio", online=offline)  # no toolchain needed
    out = tmp_path / "out" / "sim"
    got = {f["role"]: int(f["offset"], 16) for f in m["files"]}
    assert got == {"partition-table": 0x8000, "app": 0x10000, "model": 0x210000}
    table = partitions.from_binary((out / "partition-table.bin").read_bytes())
    assert {p.name: p.offset for p in table} == {"nvs": 0x9000, "phy_init": 0xF000, "factory": 0x10000,
                                                 "model": 0x210000}
    model, head = partitions.read_model_image((out / "model.bin").read_bytes())
    assert head["sha256"] == m["model_sha256"] == hashlib.sha256(model).hexdigest()
    desc = json.loads((out / "app.bin").read_text())
    assert desc["kind"] == "yamflash-virtual-app" and desc["fw"] == m["firmware_version"]
    assert "not an ESP32 image" in desc["note"]
    try:
        from yamflash.board import flash
    except ImportError:
        return
    plan = flash.load_plan(out / "flash.json")  # the flash driver accepts what build wrote
    assert plan.model_sha256 == m["model_sha256"]


# ---- platformio.ini --------------------------------------------------------------------------------


def test_platformio_ini_parses_with_pio() -> None:
    pio = shutil.which("pio") or str(Path(os.sys.executable).parent / "pio")
    if not Path(pio).exists():
        pytest.skip("PlatformIO is not installed (pip install platformio to run this check)")
    r = subprocess.run([pio, "project", "config", "-d", str(ROOT / "firmware"), "--json-output"], capture_output=True,
                       text=True, timeout=120, env=build.pio_env())
    assert r.returncode == 0, r.stderr
    sections = dict(json.loads(r.stdout))
    envs = {k.split(":", 1)[1]: dict(v) for k, v in sections.items() if k.startswith("env:")}
    from yamflash.target import profiles

    assert set(envs) == {p.name for p in profiles.PROFILES.values() if not p.sim}
    for name, opts in envs.items():
        assert opts["platform"] == f"platformio/espressif32 @ {build.PIO_PLATFORM_VERSION}"
        assert opts["framework"] == ["espidf"] and opts["board_build.partitions"] == "partitions.csv"
        assert opts["board_upload.flash_size"] == profiles.get(name).flash_size_str
    assert dict(sections["platformio"])["src_dir"].endswith("main")
