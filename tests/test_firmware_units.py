"""firmware/main's own logic run on the host (issue 10, findings 4, 5, 7 and 10b).

- yf_sha256.c (portable C) against hashlib, under ASan/UBSan: no ESP-IDF needed.
- yf_tasks.c and yf_model_store.c compiled exactly as the compile gate compiles them (real ESP-IDF v5.5
  headers, generated headers of one variant) plus ASan/UBSan, linked with stand-ins for the ESP-IDF/FreeRTOS
  calls they make (tests/firmware_compile/fakes.c, whose prototypes the real headers check), and run:
  every Invoke is followed by a one-tick vTaskDelay (IDLE1 and the task watchdog, bench and streaming);
  SPIFFS loads read and hash in chunks with a yield after each; the partition is hashed by ESP-IDF's
  bootloader_common_get_sha256_of_partition over exactly the model's bytes; an `err` at a failed boot needs no
  lock. What the stand-ins cannot show: real scheduling, real flash and SPIFFS timing."""

from __future__ import annotations

import hashlib
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from firmware_compile import harness
from test_gen import make_model

MAIN = harness.FIRMWARE / "main"
CHUNK = 64 * 1024  # YF_LOAD_CHUNK in yf_model_store.c


def run(argv: list[str]) -> str:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and not p.stderr.strip(), p.stdout + p.stderr
    return p.stdout


# ---- yf_sha256.c ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sha_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    exe = tmp_path_factory.mktemp("sha") / "sha_main"
    run([gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", *harness.SANITIZE, f"-I{MAIN}",
         str(MAIN / "yf_sha256.c"), str(harness.HERE / "sha_main.c"), "-o", str(exe)])
    return exe


@pytest.mark.parametrize("size,chunk", [(0, 64), (1, 64), (55, 64), (56, 64), (63, 64), (64, 64), (65, 7),
                                        (1000, 64), (200_003, 65536), (131072, 65536)])
def test_sha256_and_chunked_copy(sha_exe: Path, tmp_path: Path, size: int, chunk: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    f = tmp_path / "data.bin"
    f.write_bytes(data)
    trace, rc, sha, copy = run([str(sha_exe), str(f), str(chunk)]).splitlines()
    assert (rc, sha, copy) == ("rc 0", "sha " + hashlib.sha256(data).hexdigest(), "copy same")
    reads = [int(t[1:]) for t in trace.split() if t.startswith("R")]
    assert sum(reads) == size and all(0 < r <= chunk for r in reads)
    assert len(reads) == math.ceil(size / chunk)
    assert trace.split() == [t for r in reads for t in (f"R{r}", "Y")]  # a yield after every chunk


def test_chunked_copy_reports_a_short_read(sha_exe: Path, tmp_path: Path) -> None:
    f = tmp_path / "data.bin"
    f.write_bytes(bytes(range(256)) * 1000)
    assert "rc -1" in run([str(sha_exe), str(f), "65536", "short"]).splitlines()


# ---- yf_tasks.c and yf_model_store.c with stand-ins -------------------------------------------------


def driver(tmp: Path, storage: str, place: str | None = None) -> tuple[Path, Path]:
    why = harness.missing_sdk()
    if why:
        pytest.skip(f"firmware on the host: {why}")
    model = make_model(tmp / "model")  # 200,000 bytes: four 64 KiB chunks
    return harness.build_driver(harness.Variant("esp32s3-n16r8", "usb-serial-jtag", "i2s", storage, place), model,
                                tmp)


@pytest.fixture(scope="module")
def spiffs_driver(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return driver(tmp_path_factory.mktemp("drv-spiffs"), "spiffs")


@pytest.fixture(scope="module")
def partition_driver(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return driver(tmp_path_factory.mktemp("drv-partition"), "partition", "flash")


@pytest.fixture(scope="module")
def partition_copy_driver(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return driver(tmp_path_factory.mktemp("drv-partition-copy"), "partition")  # gen's default on the N16R8


def fields(out: str) -> dict[str, str]:
    return dict(line.split(" ", 1) if " " in line else (line, "") for line in out.splitlines())


def test_every_invoke_lets_idle1_run(spiffs_driver: tuple[Path, Path]) -> None:
    # Finding 4: bench (here 5 Invokes) then 3 streamed patches, back to back on core 1.
    out = run([str(spiffs_driver[0]), "tasks", "5", "3"])
    assert "task yf_inference core=1 prio=5 stack=8192" in out
    trace = fields(out)["trace"].split()
    assert trace.count("I") == 8
    assert trace == ["I", "D1"] * 8, trace
    assert '"cmd":"bench","ok":true,"n":5' in out and out.count('"t":"timing"') == 3


def test_boot_failure_err_needs_no_lock(spiffs_driver: tuple[Path, Path]) -> None:
    # Finding 10b: yf_tasks_init() failed, so its mutex does not exist; the err line still goes out.
    out = run([str(spiffs_driver[0]), "emit-before-init"])
    assert '"t":"err"' in out and '"code":"E_ALLOC"' in out


def test_spiffs_model_is_read_and_hashed_in_chunks(spiffs_driver: tuple[Path, Path], tmp_path: Path) -> None:
    exe, fw = spiffs_driver
    model = fw / "spiffs" / "model.tflite"
    out = fields(run([str(exe), "load", str(model)]))
    assert (out["rc"], out["where"], out["bytes"], out["err"]) == ("0", "psram", str(model.stat().st_size), "")
    trace = out["trace"].split()
    n = math.ceil(model.stat().st_size / CHUNK)
    assert trace == [t for i in range(n) for t in (f"R{min(CHUNK, model.stat().st_size - i * CHUNK)}", "D1")]
    # One byte changed: the sha256 check refuses it.
    bad = bytearray(model.read_bytes())
    bad[len(bad) // 2] ^= 1
    (tmp_path / "bad.tflite").write_bytes(bytes(bad))
    out = fields(run([str(exe), "load", str(tmp_path / "bad.tflite")]))
    assert out["rc"] == "-1" and "does not match" in out["err"]


def test_partition_model_is_hashed_by_esp_idf_in_place(partition_driver: tuple[Path, Path], tmp_path: Path) -> None:
    exe, fw = partition_driver
    image = fw / "model" / "model_partition.bin"
    model_bytes = image.stat().st_size - 64  # yamflash's 64-byte header, then the model
    out = fields(run([str(exe), "load", str(image)]))
    assert (out["rc"], out["where"], out["bytes"], out["offset"]) == ("0", "flash-mmap", str(model_bytes), "64")
    # The flash range after the header, as long as the model: not the header's claim, not the padding.
    assert re.fullmatch(rf"H{0x410000 + 64},{model_bytes}", out["trace"].strip())
    bad = bytearray(image.read_bytes())
    bad[64 + model_bytes // 2] ^= 1
    (tmp_path / "bad.bin").write_bytes(bytes(bad))
    out = fields(run([str(exe), "load", str(tmp_path / "bad.bin")]))
    assert out["rc"] == "-1" and "does not match" in out["err"]


def test_partition_model_is_hashed_in_flash_then_copied_into_psram(partition_copy_driver: tuple[Path, Path],
                                                                    tmp_path: Path) -> None:
    # Issue 14: --model-place psram (gen's default where model + arena fit): the flash bytes are hashed by
    # ESP-IDF as before, then copied into PSRAM in 64 KiB chunks with a one-tick yield after each.
    exe, fw = partition_copy_driver
    assert "#define YF_MODEL_COPY_TO_PSRAM 1" in (fw / "main" / "generated" / "yf_model_params.h").read_text()
    image = fw / "model" / "model_partition.bin"
    model_bytes = image.stat().st_size - 64
    out = fields(run([str(exe), "load", str(image)]))
    assert (out["rc"], out["where"], out["bytes"], out["offset"]) == ("0", "psram", str(model_bytes), "-1")
    chunks = -(-model_bytes // CHUNK)
    assert out["trace"].split() == [f"H{0x410000 + 64},{model_bytes}"] + ["D1"] * chunks
    bad = bytearray(image.read_bytes())
    bad[64 + model_bytes // 2] ^= 1
    (tmp_path / "bad.bin").write_bytes(bytes(bad))
    out = fields(run([str(exe), "load", str(tmp_path / "bad.bin")]))
    assert out["rc"] == "-1" and "does not match" in out["err"] and out["trace"].split() == [
        f"H{0x410000 + 64},{model_bytes}"]  # refused before any copy
