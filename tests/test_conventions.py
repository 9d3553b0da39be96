"""Issue 13, findings 8 and 9: the ecosystem's conventions and open artefacts.

-p/--port and -b/--baud with ESPPORT/ESPBAUD on every command that talks to a board (--board is always the
build profile), `yamflash ports` from esptool's own port discovery, `flash --monitor`, ESP-IDF's
flasher_args.json/flash_args and a merged image from esptool's merge-bin, outputs readable by others,
labels in any case, and `yamflash --help` in pipeline order with help for every option. Where a port is
needed it is esp32-mock-bootloader's (a mock ESP32-S3 ROM loader on a PTY, tests/test_flash_board.py), and
what landed on its flash is read back through esptool, never trusted from yamflash's output.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from serial.tools.list_ports_common import ListPortInfo
from simboard import cli, model_dir, sim_manifest, write_wav
from test_flash_board import ROLES, make_build, mock_bootloader, read_back  # noqa: F401  (a fixture)
from yamflash.board import ports

ROOT = Path(__file__).resolve().parents[1]
SDK = Path(os.environ.get("YAMFLASH_SDK") or ROOT.parent / "shared" / "sdk")
ESPTOOL_PY = SDK / "esp-idf-v5.5" / "components" / "esptool_py"


@pytest.fixture(autouse=True)
def _no_device_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own ESPPORT/ESPBAUD must not steer these tests."""
    for name in ("ESPPORT", "ESPBAUD", "MONITORBAUD", "IDF_MONITOR_BAUD"):
        monkeypatch.delenv(name, raising=False)


# ---- yamflash --help ----------------------------------------------------------------------------------------
def test_help_lists_commands_in_pipeline_order_and_every_option_has_help(capsys):
    import click
    from yamflash.cli import cli as group

    assert cli("--help") == 0
    out = capsys.readouterr().out
    listed = re.findall(r"^  (\w+)\s{2,}", out.split("Commands:")[1], re.MULTILINE)
    assert listed == ["convert", "inspect", "gen", "build", "flash", "monitor", "validate", "bench", "train",
                      "distill", "sim", "ports"]
    bare = [f"{name} {'/'.join(p.opts)}" for name, cmd in group.commands.items() for p in cmd.params
            if isinstance(p, click.Option) and not p.help]
    assert bare == []
    for name in ("flash", "monitor", "validate", "bench"):  # the device options, spelt as esptool/idf.py spell them
        opts = {o for p in group.commands[name].params for o in p.opts}
        assert {"-p", "--port", "-b", "--baud", "--board"} <= opts, name


# ---- yamflash ports -----------------------------------------------------------------------------------------
def _port(device: str, vid: int | None = None, pid: int | None = None, serial: str | None = None,
          description: str = "n/a", product: str | None = None, location: str | None = None) -> ListPortInfo:
    p = ListPortInfo(device, skip_link_detection=True)
    p.vid, p.pid, p.serial_number, p.description, p.product, p.location = (vid, pid, serial, description, product,
                                                                           location)
    return p


PLUGGED = [  # pyserial's listing, in the order the OS gave it
    _port("/dev/ttyS0"),
    _port("/dev/ttyUSB0", 0x1A86, 0x55D3, "5434012345", "USB Single Serial", "USB Single Serial", "1-1.1"),
    _port("/dev/ttyUSB1", 0x10C4, 0xEA70, "0001", "CP2105 Dual USB to UART Bridge Controller - Standard", None,
          "1-1.2:1.1"),
    _port("/dev/ttyUSB2", 0x0403, 0x6010, None, "Dual RS232-HS", "Dual RS232-HS", "1-1.3:1.1"),
    _port("/dev/ttyUSB3", 0x1A86, 0x7523, None, "USB Serial", "USB Serial", "1-1.4"),
    _port("/dev/ttyACM0", 0x303A, 0x1001, "F4:12:FA:D0:00:01", "USB JTAG/serial debug unit",
          "USB JTAG/serial debug unit", "1-1.5:1.0"),
    _port("/dev/ttyACM1", 0x2341, 0x0043, "95530343", "Arduino Uno", "Arduino Uno", "1-1.6:1.0"),
]


@pytest.fixture
def plugged(monkeypatch: pytest.MonkeyPatch) -> list[ListPortInfo]:
    """What pyserial enumerates, patched at the bottom: esptool's discovery (esp-pylib) runs unchanged above it."""
    try:
        from esp_pylib import serial_ports
    except ImportError:  # esptool before esp-pylib: yamflash falls back to pyserial itself
        from serial.tools import list_ports

        monkeypatch.setattr(list_ports, "comports", lambda *a, **k: list(PLUGGED))
        return PLUGGED
    monkeypatch.setattr(serial_ports, "_comports", lambda *a, **k: list(PLUGGED))
    return PLUGGED


def test_ports_lists_chip_bridge_usb_ids_and_serial_as_esptool_finds_them(plugged, capsys):
    assert cli("ports", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    try:
        from esp_pylib.serial_ports import get_port_names
    except ImportError:
        pass
    else:  # the same ports in the same order as esptool scans them
        assert [p["device"] for p in listed] == get_port_names()
    by = {p["device"]: p for p in listed}
    assert listed[0]["device"] == "/dev/ttyACM0" and listed[-1]["device"] == "/dev/ttyS0"  # Espressif first
    acm = by["/dev/ttyACM0"]
    assert (acm["chip"], acm["usb"], acm["serial_number"]) == ("ESP32-S3/C3-class", "303A:1001", "F4:12:FA:D0:00:01")
    assert acm["bridge"] == "native USB-Serial-JTAG" and acm["auto"]
    names = {d: by[d]["bridge"] for d in by}
    assert "CH343" in names["/dev/ttyUSB0"] and "CP2105" in names["/dev/ttyUSB1"] and "CH340" in names["/dev/ttyUSB3"]
    assert "ESP-Prog" in names["/dev/ttyUSB2"] and by["/dev/ttyUSB2"]["interface"] == 1
    assert names["/dev/ttyACM1"] == "Arduino Uno"  # an unnamed bridge: what the OS calls it
    assert all(by[d]["chip"] is None for d in by if d != "/dev/ttyACM0")  # never guessed behind a bridge
    assert by["/dev/ttyS0"]["usb"] is None and not by["/dev/ttyS0"]["auto"]

    assert cli("ports") == 0
    text = capsys.readouterr().out
    row = next(ln for ln in text.splitlines() if ln.startswith("/dev/ttyUSB1"))
    assert "10C4:EA70" in row and "0001" in row and "interface 1" in row and "CP2105 Dual USB" in row
    assert "--port auto asks which of the 6 USB ports" in text

    # --port auto chooses among exactly the ports `yamflash ports` marks, in the same order
    assert [c.device for c in ports.candidates()] == [p["device"] for p in listed if p["auto"]]


def test_port_auto_takes_the_one_usb_port_whatever_its_bridge(monkeypatch):
    for plugged in (_port("/dev/ttyUSB0", 0x1A86, 0x55D3), _port("/dev/ttyUSB0", 0x0403, 0x6010, location="1-1:1.1"),
                    _port("/dev/ttyUSB0", 0x10C4, 0xEA70)):  # CH343, ESP-Prog, CP2105: missed by the old list
        got = ports.resolve("auto", ports=[_port("/dev/ttyS0"), plugged])
        assert isinstance(got, ports.Candidate) and got.device == "/dev/ttyUSB0"


# ---- -p/--port, -b/--baud, ESPPORT, ESPBAUD -----------------------------------------------------------------
@pytest.fixture
def esptool_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(port, baud) of every esptool session `yamflash flash` opens; the real flash still happens."""
    from yamflash.board import flash as fl

    calls: list[tuple[str, int]] = []
    real = fl.flash_esptool

    def spy(plan: Any, port: str, baud: int = 460800, **kw: Any) -> Any:
        calls.append((port, baud))
        return real(plan, port, baud, **kw)

    monkeypatch.setattr(fl, "flash_esptool", spy)
    return calls


def test_espport_and_espbaud_are_the_defaults_and_p_b_win(mock_bootloader, tmp_path, monkeypatch,  # noqa: F811
                                                         capsys, esptool_calls):
    mock = mock_bootloader()
    a = make_build(tmp_path / "a")
    monkeypatch.setenv("ESPPORT", mock.pty)
    monkeypatch.setenv("ESPBAUD", "230400")
    assert cli("flash", "--manifest", str(a.manifest)) == 0, capsys.readouterr().err
    mock.wrote()
    assert esptool_calls == [(mock.pty, 230400)]
    assert read_back(mock, a.regions(*ROLES)) == a.data(*ROLES)

    monkeypatch.setenv("ESPPORT", str(tmp_path / "ttyNOPE"))
    mock.settle()
    assert cli("flash", "-p", mock.pty, "-b", "115200", "--manifest", str(a.manifest)) == 0
    assert esptool_calls[-1] == (mock.pty, 115200)
    assert "already holds every region" in capsys.readouterr().out

    monkeypatch.setenv("ESPBAUD", "fast")
    assert cli("flash", "--manifest", str(a.manifest)) == 2
    assert error_lines_of(capsys) == [
        "yamflash: error: ESPBAUD='fast' is not a baud rate; set it to a number such as 115200 (or unset it)."]


def test_flash_monitor_runs_the_monitor_on_the_flashed_port(mock_bootloader, tmp_path, monkeypatch,  # noqa: F811
                                                           capsys):
    from yamflash.board import monitor

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(monitor, "monitor", lambda opts: seen.append(vars(opts)))
    mock = mock_bootloader()
    a = make_build(tmp_path / "a", console="uart")
    assert cli("flash", "-p", mock.pty, "--manifest", str(a.manifest), "--monitor") == 0, capsys.readouterr().err
    mock.wrote()
    assert len(seen) == 1 and seen[0]["port"] == mock.pty
    assert seen[0]["baud"] == 921600  # the console rate this build recorded, not esptool's flashing rate
    assert read_back(mock, a.regions("app", "model")) == a.data("app", "model")  # flashed before monitoring

    # The virtual board's build goes to the virtual board even when ESPPORT names a serial port.
    monkeypatch.setenv("ESPPORT", "/dev/ttyS0")
    manifest = sim_manifest(model_dir(tmp_path / "model"))
    sim_flash = tmp_path / "sim" / "flash.bin"
    assert cli("flash", "--board", "sim", "--manifest", str(manifest), "--sim-flash", str(sim_flash),
               "--monitor") == 0, capsys.readouterr().err
    assert sim_flash.stat().st_size == 16 << 20
    assert seen[1]["port"] == "sim" and seen[1]["sim_flash"] == str(sim_flash)
    assert not (manifest.parent / "flasher_args.json").exists()  # never an esptool recipe for the virtual board


def test_validate_and_bench_take_the_device_as_port_and_the_old_board_spelling_warns(tmp_path, capsys,
                                                                                    monkeypatch):
    wav = write_wav(tmp_path / "a.wav", 1.5)
    gone = str(tmp_path / "ttyGONE")
    for argv in (["validate", "-p", gone, "--audio", str(wav)], ["bench", "--port", gone]):
        assert cli(*argv) == 2
        assert error_lines_of(capsys) == [f"yamflash: error: {gone} does not exist; check the cable, or use "
                                          "--port auto."]
    for argv in (["validate", "--board", gone, "--audio", str(wav)], ["bench", "--board", gone]):
        assert cli(*argv) == 2
        lines = error_lines_of(capsys)
        assert len(lines) == 2 and lines[1].startswith(f"yamflash: error: {gone} does not exist"), lines
        assert lines[0] == (f"yamflash: warning: `{argv[0]} --board {gone}` is deprecated: the device is -p/--port "
                            f"now and --board names the build profile; reading it as --port {gone} (the old "
                            "spelling goes in the next release).")
    assert cli("validate", "--board", gone, "--port", gone, "--audio", str(wav)) == 2
    assert "is not a build profile" in capsys.readouterr().err
    monkeypatch.setenv("ESPPORT", gone)
    assert cli("validate", "--board", "esp32s3-n16r8", "--audio", str(wav)) == 2  # a profile, and ESPPORT's port
    assert error_lines_of(capsys) == [f"yamflash: error: {gone} does not exist; check the cable, or use --port auto."]


def error_lines_of(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


def test_pytest_plugin_takes_port_and_the_old_board_spelling_warns(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_kind.py").write_text("import os\n\ndef test_kind(board_kind):\n"
                                        "    assert board_kind == os.environ['WANT']\n")

    def run(*args: str, want: str = "sim", **env: str) -> str:
        e = {k: v for k, v in os.environ.items() if k not in ("ESPPORT", "ESPBAUD")}
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(suite),
                            "--rootdir", str(suite), *args], capture_output=True, text=True, timeout=120,
                           cwd=suite, env={**e, "WANT": want, **env})
        return p.stdout + p.stderr

    out = run("--port", "sim")
    assert "1 passed" in out and "deprecated" not in out, out
    out = run("--board", "sim")
    assert "1 passed" in out and "pytest --board sim is deprecated: use --port sim" in out, out
    out = run(want="chip", ESPPORT="/dev/ttyACM7")
    assert "1 passed" in out, out
    out = run()
    assert "1 skipped" in out and "no --port given" in out, out


# ---- labels in any case --------------------------------------------------------------------------------------
def test_detect_labels_match_in_any_case(tmp_path):
    from yamflash.board.monitor import _classes
    from yamflash.errors import UserError

    mj = str(model_dir(tmp_path / "m") / "model.json")  # labels: Speech, sound 1, ... sound 7
    assert _classes(("speech", "SOUND 3", "Sound 1"), mj) == [0, 3, 1]
    with pytest.raises(UserError, match="did you mean: sound 1"):
        _classes(("sound",), mj)


# ---- ESP-IDF's artefacts, the merged image, modes -----------------------------------------------------------
def _cmake_flasher_args(manifest: dict[str, Any], entries: list[tuple[str, str, str]]) -> str:
    """ESP-IDF v5.5's flasher_args.json.in, filled in as its CMake does (string(CONFIGURE) for ${...}, then
    file(GENERATE) for the $<JOIN:...> of the flash target's FLASH_FILE and FLASH_ENTRY properties)."""
    text = (ESPTOOL_PY / "flasher_args.json.in").read_text()
    mode = {"qio": "dio", "qout": "dio"}.get(manifest["flash_mode"], manifest["flash_mode"])
    for var, value in {"ESPFLASHMODE": mode, "ESPFLASHSIZE": manifest["flash_size"],
                       "ESPFLASHFREQ": manifest["flash_freq"], "ESPTOOLPY_AFTER": "hard_reset",
                       "ESPTOOLPY_BEFORE": "default_reset", "ESPTOOLPY_WITH_STUB": "true",
                       "ESPTOOLPY_CHIP": manifest["chip"]}.items():
        text = text.replace("${" + var + "}", value)
    files = [f'"{off}" : "{name}"' for _, off, name in entries]  # esptool_py_flash_target_image's FLASH_FILE
    cmake = (ESPTOOL_PY / "project_include.cmake").read_text()
    entry = re.search(r'PROPERTY FLASH_ENTRY\s+"(.*?)"\)', cmake, re.S)
    assert entry, "FLASH_ENTRY not found in project_include.cmake"
    fmt = re.sub(r"\\\n", "", entry.group(1)).replace('\\"', '"')  # CMake line continuation and quotes
    items = [fmt.replace("${image_name}", r).replace("${offset}", off).replace("${image}", name)
             .replace("${encrypted}", "false") for r, off, name in entries]
    text = re.sub(r"\$<JOIN:\$<TARGET_PROPERTY:flash,FLASH_FILE>,(.*?)>", lambda m: m.group(1).join(files), text,
                  flags=re.S)
    text = re.sub(r"\$<JOIN:\$<TARGET_PROPERTY:flash,FLASH_ENTRY>,(.*?)>\$<\$<BOOL:[^>]*>>:,>",
                  lambda m: m.group(1).join(items) + ",", text, flags=re.S)
    return text


def _cmake_flash_args(manifest: dict[str, Any], entries: list[tuple[str, str, str]]) -> str:
    """The flash_args esptool_py_flash_target writes: FLASH_SUB_ARGS, then one "offset file" line per image."""
    cmake = (ESPTOOL_PY / "project_include.cmake").read_text()
    sub = re.search(r'FLASH_SUB_ARGS "(.*?)"\)', cmake, re.S)
    assert sub, "FLASH_SUB_ARGS not found in project_include.cmake"
    mode = {"qio": "dio", "qout": "dio"}.get(manifest["flash_mode"], manifest["flash_mode"])
    line = re.sub(r"\\\n", "", sub.group(1)).replace("${ESPFLASHMODE}", mode) \
        .replace("${ESPFLASHFREQ}", manifest["flash_freq"]).replace("${ESPFLASHSIZE}", manifest["flash_size"])
    return line + "\n" + "\n".join(f"{off} {name}" for _, off, name in entries)


def test_build_writes_esp_idf_artefacts_and_a_merged_image_that_flashes_at_0x0(mock_bootloader,  # noqa: F811
                                                                               tmp_path):
    out = tmp_path / "a"
    out.mkdir()
    (out / "flash.json").write_text("{}")
    (out / "flash.json").chmod(0o600)  # as earlier yamflash builds left every output (mkstemp's mode)
    old = os.umask(0o022)
    try:
        a = make_build(out)
    finally:
        os.umask(old)
    manifest = json.loads(a.manifest.read_text())
    names = ("bootloader.bin", "partition-table.bin", "app.bin", "model.bin", "flash.json", "flasher_args.json",
             "flash_args", "merged-binary.bin")
    assert {n: stat.S_IMODE((out / n).stat().st_mode) for n in names} == {n: 0o644 for n in names}

    flasher = json.loads((out / "flasher_args.json").read_text())
    assert flasher["flash_settings"] == {"flash_mode": "dio", "flash_size": "4MB", "flash_freq": "80m"}
    assert flasher["extra_esptool_args"]["chip"] == "esp32s3"
    offsets = {f["role"]: f["offset"] for f in manifest["files"]}
    assert flasher["flash_files"] == {offsets[r]: f"{r}.bin" for r in ROLES}
    assert flasher["model"] == {"offset": offsets["model"], "file": "model.bin", "encrypted": "false"}
    entries = [(r, offsets[r], f"{r}.bin") for r in ("bootloader", "app", "partition-table", "model")]
    if ESPTOOL_PY.is_dir():  # byte for byte what ESP-IDF's template and CMake functions give
        assert (out / "flasher_args.json").read_text() == _cmake_flasher_args(manifest, entries)
        assert (out / "flash_args").read_text() == _cmake_flash_args(manifest, entries)

    # idf.py merge-bin is `esptool merge-bin @flash_args`: the same bytes, so flash_args is esptool's to read
    ref = tmp_path / "ref.bin"
    p = subprocess.run([sys.executable, "-m", "esptool", "--chip", "esp32s3", "merge-bin", "-o", str(ref),
                        "@flash_args"], capture_output=True, text=True, cwd=out, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    merged = (out / "merged-binary.bin").read_bytes()
    assert merged == ref.read_bytes()
    for role in ROLES:
        off, data = a.images[role]
        assert merged[off:off + len(data)] == data

    # A web flasher's path: the merged image at 0x0 with esptool's own CLI; what landed is what yamflash flashes.
    mock = mock_bootloader()
    p = subprocess.run([sys.executable, "-m", "esptool", "--chip", "esp32s3", "-p", mock.pty, "write-flash", "0x0",
                        "merged-binary.bin"], capture_output=True, text=True, cwd=out, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    mock.wrote()
    assert read_back(mock, a.regions(*ROLES)) == a.data(*ROLES)
    mock.settle()
    p = subprocess.run([sys.executable, "-m", "yamflash", "flash", "-p", mock.pty, "--manifest", str(a.manifest)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0 and "already holds every region" in p.stdout, p.stdout + p.stderr


def test_outputs_follow_the_umask(tmp_path):
    from yamflash.outputs import atomic_write

    old = os.umask(0o077)
    try:
        atomic_write(tmp_path / "private.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600

