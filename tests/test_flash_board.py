"""`yamflash flash --port <serial>` the way a user's board takes it: esptool's ROM-bootloader protocol (sync, chip
detection, stub upload, compressed writes, MD5 verification, reset) against esp32-mock-bootloader, a mock ESP32-S3
ROM bootloader on a pseudo-terminal. The images are made up (the mock keeps flash, it boots nothing), small, and
laid out by the build's own manifest writer. What landed is read back through esptool's API, never trusted from
yamflash's output.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from yamflash.target import build, partitions

ROOT = Path(__file__).resolve().parents[1]
APP_OFF, MODEL_OFF = 0x10000, 0x110000


# ---- the mock bootloader ------------------------------------------------------------------------------------
REBOOT_S = 3.2  # the mock leaves its loader session 3 s after a flash ends, as a chip leaves the ROM to boot


@dataclass
class MockBoot:
    """One mock ROM bootloader process: its PTY (the "serial port" to pass as --port) and its process id.

    After a write the mock ends its loader session 3 s after the last FLASH_END (the chip "boots its app") and
    the next client finds a fresh ROM; a client talking across that moment is cut off. So, as with a board
    that reboots after flashing, the next connection waits for it (``settle``) whenever something was written.
    """

    chip: str
    pty: str
    proc: subprocess.Popen[bytes]
    busy_until: float = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wrote(self) -> None:
        self.busy_until = time.monotonic() + REBOOT_S

    def settle(self) -> None:
        time.sleep(max(0.0, self.busy_until - time.monotonic()))

    def kill(self) -> None:
        """The board vanishes: SIGKILL, as an unplugged cable gives no goodbye either."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


def _mock_exe() -> str | None:
    here = Path(sys.executable).parent / "esp32-mock-bootloader"
    return str(here) if here.is_file() else shutil.which("esp32-mock-bootloader")


@pytest.fixture
def mock_bootloader(tmp_path: Path) -> Iterator[Callable[..., MockBoot]]:
    """Start `esp32-mock-bootloader run --chip <chip> --pty` (ESP32-S3 by default) and stop it by its pid.

    Skips, saying why, where the mock cannot start: not installed (it is in the `test` extra), no PTYs (Windows).
    `--timeout` bounds its life even if this test process dies without tearing down.
    """
    exe = _mock_exe()
    if exe is None:
        pytest.skip("esp32-mock-bootloader is not installed (pip install -e '.[test]')")
    if os.name != "posix":
        pytest.skip("the mock bootloader's PTY transport needs a POSIX system")
    started: list[MockBoot] = []

    def start(chip: str = "esp32s3") -> MockBoot:
        log = tmp_path / f"mock-{chip}-{len(started)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([exe, "run", "--chip", chip, "--pty", "--timeout", "600"], stdout=out,
                                    stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = re.search(r"on PTY (\S+)", log.read_text(errors="replace"))
            if m and Path(m.group(1)).exists():
                mock = MockBoot(chip, m.group(1), proc)
                started.append(mock)
                return mock
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        pytest.skip(f"esp32-mock-bootloader did not start a PTY: {log.read_text(errors='replace')[-300:]!r}")

    yield start
    for mock in started:
        mock.stop()


def read_back(mock: MockBoot, regions: list[tuple[int, int]]) -> list[bytes]:
    """Bytes at (offset, length) read from the mock's flash through esptool's API (stub READ_FLASH).

    Retried on a fresh connection: the mock drops a READ_FLASH stream when an ack is 50 ms late (a loaded CI
    machine), which says nothing about what its flash holds.
    """
    from esptool import cmds
    from esptool.util import FatalError

    for attempt in range(3):
        mock.settle()
        esp = cmds.detect_chip(mock.pty, baud=460800, connect_mode="default-reset")
        try:
            esp = cmds.run_stub(esp)
            cmds.attach_flash(esp)
            return [esp.read_flash(off, n) for off, n in regions]
        except FatalError:
            if attempt == 2:
                raise
            mock.busy_until = time.monotonic() + REBOOT_S
        finally:
            esp._port.close()
    raise AssertionError("unreachable")


def write_raw(mock: MockBoot, offset: int, data: bytes) -> None:
    """Change the board's flash behind yamflash's back (another tool, a half-finished flash)."""
    from esptool import cmds

    mock.settle()
    esp = cmds.detect_chip(mock.pty, baud=460800, connect_mode="default-reset")
    try:
        esp = cmds.run_stub(esp)
        cmds.attach_flash(esp)
        cmds.write_flash(esp, [(offset, data)], flash_size="keep", compress=True)
    finally:
        esp._port.close()
        mock.wrote()


# ---- made-up builds of the esp32s3 profile ------------------------------------------------------------------
def s3_image(load_addr: int, payload: bytes) -> bytes:
    """A genuine ESP32-S3 image (esptool's own writer), so esptool's image checks see what a build gives them."""
    from esptool.bin_image import ESP32S3FirmwareImage, ImageSegment

    img = ESP32S3FirmwareImage()
    seg = ImageSegment(load_addr, payload)
    seg.name = ".text"
    img.segments, img.entrypoint = [seg], load_addr
    img.flash_mode, img.flash_size_freq = 2, 0x2F  # DIO, 4 MB, 80 MHz
    return bytes(img.save(None))


@dataclass
class Build:
    manifest: Path
    images: dict[str, tuple[int, bytes]]  # role -> (offset, bytes) as flash.json lists them

    def regions(self, *roles: str) -> list[tuple[int, int]]:
        return [(self.images[r][0], len(self.images[r][1])) for r in roles]

    def data(self, *roles: str) -> list[bytes]:
        return [self.images[r][1] for r in roles]


def make_build(out: Path, seed: int = 0, model_bytes: int = 48 * 1024, app_seed: int | None = None,
               flash_size: int = 4 << 20, console: str = "uart") -> Build:
    """bootloader + partition table + app + raw model partition, written by build.write_manifest (flash.json as
    `yamflash build` writes it) for profile esp32s3-n16r8 generated with --flash-size 4MB (the mock's flash)."""
    rnd = __import__("random").Random
    model = rnd(seed).randbytes(model_bytes)
    app_payload = rnd(seed if app_seed is None else app_seed).randbytes(24 * 1024)
    parts = partitions.resolve([partitions.Partition("nvs", 1, 2, 0x6000),
                                partitions.Partition("phy_init", 1, 1, 0x1000),
                                partitions.Partition("factory", 0, 0, 0x100000),
                                partitions.Partition("model", 1, 0x40, partitions.align_up(model_bytes + 64, 0x1000))])
    images = {"bootloader": s3_image(0x403C8000, rnd(7).randbytes(6 * 1024)),
              "partition-table": partitions.to_binary(parts), "app": s3_image(0x42000020, app_payload),
              "model": partitions.model_image(model)}
    g = build.Generated({"profile": "esp32s3-n16r8", "flash_size": flash_size, "storage": "partition",
                         "console": console, "generator": "yamflash test-1",
                         "model_sha256": hashlib.sha256(model).hexdigest()})
    m = build.write_manifest(out, g, parts, 0x8000, images, 921600 if console == "uart" else None)
    return Build(out / "flash.json", {f["role"]: (int(f["offset"], 16), images[f["role"]]) for f in m["files"]})


def yamflash(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: its own process, real stdout/stderr."""
    return subprocess.run([sys.executable, "-m", "yamflash", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def flash(mock: MockBoot, *args: str) -> subprocess.CompletedProcess[str]:
    """`yamflash flash --port <the mock> ...` once the mock is back in its ROM loader."""
    mock.settle()
    p = yamflash("flash", "--port", mock.pty, *args)
    if ": writing" in p.stdout:
        mock.wrote()
    return p


def error_lines(p: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in p.stderr.splitlines() if ln.strip()]


ROLES = ("bootloader", "partition-table", "app", "model")


# ---- the tests ----------------------------------------------------------------------------------------------
def test_every_region_lands_at_its_offset_and_model_only_touches_only_the_model(mock_bootloader, tmp_path):
    mock = mock_bootloader()
    a, b = make_build(tmp_path / "a", seed=0), make_build(tmp_path / "b", seed=1, app_seed=2)
    assert [off for off, _ in a.regions(*ROLES)] == [0x0, 0x8000, APP_OFF, MODEL_OFF]
    p = flash(mock, "--manifest", str(a.manifest))
    assert p.returncode == 0, p.stderr
    for role in ROLES:
        assert re.search(rf"{role}\s+[\d,]+ bytes at 0x[0-9a-f]+: writing", p.stdout), p.stdout
        assert re.search(rf"{role}\s+100 % of", p.stdout), p.stdout  # progress, to the end of every region

    assert a.data("app", "model") != b.data("app", "model")
    p = flash(mock, "--manifest", str(b.manifest), "--model-only")
    assert p.returncode == 0, p.stderr
    assert re.search(r"model\s+[\d,]+ bytes at 0x110000: writing", p.stdout), p.stdout
    assert not re.search(r"(bootloader|partition-table|app)\s+[\d,]+ bytes", p.stdout), p.stdout

    gaps = [(0x8000 + 0xC00, 0x400), (MODEL_OFF + len(b.images["model"][1]) + 0x100, 0x100)]
    got = read_back(mock, a.regions(*ROLES) + gaps)
    assert got[:3] == a.data("bootloader", "partition-table", "app")  # build a's, where flash.json put them
    assert got[3] == b.images["model"][1]  # --model-only: b's model, nothing else of b
    assert got[4:] == [b"\xff" * 0x400, b"\xff" * 0x100]  # nothing written outside the regions


def test_second_flash_is_skipped_by_the_flash_content(mock_bootloader, tmp_path):
    mock = mock_bootloader()
    a = make_build(tmp_path / "a")
    assert flash(mock, "--manifest", str(a.manifest)).returncode == 0

    again = flash(mock, "--manifest", str(a.manifest))
    assert again.returncode == 0, again.stderr
    assert "already holds every region" in again.stdout and "writing" not in again.stdout, again.stdout
    assert len(re.findall(r"already in flash \(MD5 matches\)", again.stdout)) == 4

    # The board's app region changed behind yamflash's back, and the next build changes only the model (same
    # app bytes, same firmware version and names in flash.json): the MD5s decide, so the app goes again because
    # the flash no longer holds it, the model because it changed, and bootloader and table are left alone.
    write_raw(mock, APP_OFF, b"\x00" * 4096)
    c = make_build(tmp_path / "c", seed=5, app_seed=0)
    assert c.data("app") == a.data("app") and c.data("model") != a.data("model")
    changed = flash(mock, "--manifest", str(c.manifest))
    assert changed.returncode == 0, changed.stderr
    assert re.search(r"app\s+[\d,]+ bytes at 0x010000: writing", changed.stdout), changed.stdout
    assert re.search(r"model\s+[\d,]+ bytes at 0x110000: writing", changed.stdout), changed.stdout
    assert len(re.findall(r"already in flash \(MD5 matches\)", changed.stdout)) == 2, changed.stdout
    assert read_back(mock, c.regions("app", "model")) == c.data("app", "model")


def test_a_board_of_another_chip_is_refused_before_anything_is_written(mock_bootloader, tmp_path):
    mock = mock_bootloader("esp32")
    a = make_build(tmp_path / "a")
    p = flash(mock, "--manifest", str(a.manifest))
    assert p.returncode == 2
    assert error_lines(p) == [f"yamflash: error: the board on {mock.pty} is an ESP32, but this build is for an "
                              f"ESP32-S3 ({a.manifest}); nothing was written. Check --port, or build for this chip."]
    assert "writing" not in p.stdout
    blank = [b"\xff" * n for _, n in a.regions(*ROLES)]
    assert read_back(mock, a.regions(*ROLES)) == blank


def test_a_build_for_more_flash_than_the_board_has_is_refused(mock_bootloader, tmp_path):
    mock = mock_bootloader()
    big = make_build(tmp_path / "big", flash_size=16 << 20)  # the n16r8 profile's 16 MB; the mock has 4 MB
    p = flash(mock, "--manifest", str(big.manifest))
    assert p.returncode == 2 and len(error_lines(p)) == 1, p.stderr
    assert "this build is for 16 MB of flash but the board on" in p.stderr and "has 4 MB" in p.stderr
    assert read_back(mock, big.regions("bootloader")) == [b"\xff" * len(big.images["bootloader"][1])]


def test_the_virtual_boards_images_never_go_to_a_serial_port(mock_bootloader, tmp_path):
    p = yamflash("flash", "--board", "sim", "--port", "/dev/ttyS0", "--force")
    assert p.returncode == 2
    assert error_lines(p) == ["yamflash: error: --board sim is the virtual board's build; it cannot go to /dev/ttyS0. "
                              "Flash it with --port sim, or build for the chip (--board esp32s3-n16r8)."]
    # A sim build named by --manifest is recognised by its content too, before the port is opened.
    mock = mock_bootloader()
    a = make_build(tmp_path / "a")
    doc = json.loads(a.manifest.read_text())
    doc["profile"] = "sim"
    a.manifest.write_text(json.dumps(doc))
    p = flash(mock, "--manifest", str(a.manifest), "--force")
    assert p.returncode == 2 and len(error_lines(p)) == 1
    assert "is the virtual board's build (profile sim)" in p.stderr
    assert read_back(mock, a.regions("bootloader")) == [b"\xff" * len(a.images["bootloader"][1])]


def test_a_missing_port_is_not_called_busy_and_a_busy_one_is(mock_bootloader, tmp_path):
    from yamflash.board import ports

    a = make_build(tmp_path / "a")
    p = yamflash("flash", "--port", str(tmp_path / "ttyNOPE"), "--manifest", str(a.manifest), "--force")
    assert p.returncode == 2
    assert error_lines(p) == [f"yamflash: error: cannot open {tmp_path / 'ttyNOPE'}: the board is not there; check "
                              "the cable or use --port auto."]
    mock = mock_bootloader()
    held = ports.open_serial(mock.pty)  # a serial monitor left open (exclusive lock, as yamflash's own)
    try:
        p = flash(mock, "--manifest", str(a.manifest))
    finally:
        held.close()
    assert p.returncode == 2
    assert error_lines(p) == [f"yamflash: error: {mock.pty} is busy: another program (a serial monitor, an IDE) "
                              "has it open; close it and run the command again."]


def test_a_port_that_vanishes_mid_write_gives_one_line(mock_bootloader, tmp_path):
    mock = mock_bootloader()
    a = make_build(tmp_path / "a", model_bytes=640 * 1024)  # random bytes: ~1.6 s of writing on the mock
    proc = subprocess.Popen([sys.executable, "-m", "yamflash", "flash", "--port", mock.pty, "--manifest",
                             str(a.manifest)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if re.match(r"\s+model\s+\d+ % of", line):  # the model's first progress line: mid-write
            mock.kill()
            break
    out, err = proc.communicate(timeout=60)
    assert mock.proc.returncode == -signal.SIGKILL, "".join(seen)
    assert proc.returncode == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"yamflash: error: lost {mock.pty} while writing model at "
                                                   "0x110000"), err
    assert "reconnect the board and run `yamflash flash` again" in lines[0]
    assert "Traceback" not in err + out


def test_hil_plugin_reaches_its_flash_step_on_a_real_port(mock_bootloader, tmp_path):
    """`pytest --port <port>`: the plugin's real-board path flashes (esptool) and then asks the firmware for
    `info`, which a ROM-bootloader mock cannot answer: the run must get past the flash and stop there, clearly."""
    mock = mock_bootloader()
    a = make_build(tmp_path / "a")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_needs_board.py").write_text("def test_board(board):\n    assert board.hello is not None\n")
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", str(suite),
                        "--rootdir", str(suite), "--port", mock.pty, "--board-manifest", str(a.manifest),
                        "--board-boot-timeout", "1"], capture_output=True, text=True, timeout=120, cwd=suite)
    out = p.stdout + p.stderr
    mock.wrote()
    assert p.returncode == 1, out
    for role in ROLES:
        assert re.search(rf"{role}\s+[\d,]+ bytes at 0x[0-9a-f]+: writing", out), out
    assert f"console {mock.pty} at 921600 baud" in out  # the build's recorded console rate, not 115200
    assert "`info` failed: no reply within 1 s" in out
    assert read_back(mock, a.regions(*ROLES)) == a.data(*ROLES)


# ---- finding 9 of issue 10: the console's baud comes from the build --------------------------------------
def test_monitor_uses_the_builds_console_baud(tmp_path, monkeypatch):
    from simboard import cli
    from yamflash.board import monitor

    seen: list[int] = []
    monkeypatch.setattr(monitor, "monitor", lambda opts: seen.append(opts.baud))
    uart = make_build(tmp_path / "uart", console="uart")
    jtag = make_build(tmp_path / "jtag", console="usb-serial-jtag")
    assert json.loads(uart.manifest.read_text())["console_baud"] == 921600
    assert cli("monitor", "--port", "/dev/x", "--manifest", str(uart.manifest)) == 0
    assert cli("monitor", "--port", "/dev/x", "--manifest", str(uart.manifest), "--baud", "115200") == 0
    assert cli("monitor", "--port", "/dev/x", "--manifest", str(jtag.manifest)) == 0
    assert cli("monitor", "--port", "/dev/x", "--manifest", str(tmp_path / "none.json")) == 0
    assert seen == [921600, 115200, 115200, 115200]


@pytest.mark.parametrize(("console", "uart_baud", "want"), [("uart", 921600, 921600), ("uart", 230400, 230400),
                                                             ("usb-serial-jtag", 921600, None)])
def test_build_records_the_generated_console_baud(tmp_path, console, uart_baud, want):
    from test_gen import firmware_dir, make_model
    from yamflash.target import gen

    fw = firmware_dir(tmp_path)
    gen.generate(make_model(tmp_path / "model"), gen.GenConfig(console=console, uart_baud=uart_baud), fw)
    g = build.load_generated(fw, None)
    assert build.console_baud(fw, g, "pio") == build.console_baud(fw, g, "idf") == want
    (fw / "sdkconfig.esp32s3-n16r8").write_text(f"CONFIG_ESP_CONSOLE_UART_BAUDRATE={uart_baud // 2}\n")
    if want:  # what PlatformIO compiled (its sdkconfig) wins over the defaults gen wrote
        assert build.console_baud(fw, g, "pio") == uart_baud // 2
