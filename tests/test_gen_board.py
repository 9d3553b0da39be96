"""`yamflash gen` and the board: microphone pins the ESP32-S3 cannot give, and sdkconfigs left by an earlier
gen that would make the next build use old settings (issue 10, findings 8 and 10)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_gen import firmware_dir, make_model
from yamflash.errors import UserError
from yamflash.target import gen


@pytest.mark.parametrize("profile,console,pins,why", [
    ("esp32s3-n16r8", "usb-serial-jtag", {"din": 23}, "does not exist"),
    ("esp32s3-n16r8", "usb-serial-jtag", {"din": 30}, "SPI flash"),
    ("esp32s3-n16r8", "usb-serial-jtag", {"ws": 35}, "octal PSRAM"),
    ("esp32s3-n16r8", "usb-serial-jtag", {"bclk": 19}, "USB D-/D+"),
    ("esp32s3-n16r8", "uart", {"din": 43}, "UART0"),
    ("esp32s3-n16r8", "usb-serial-jtag", {"din": 0}, "strapping"),
    ("esp32s3-n16r8", "usb-serial-jtag", {"din": 4}, "both GPIO 4"),  # ws defaults to 4
    ("esp32s3-n16r8", "usb-serial-jtag", {"din": 49}, "GPIO 0..48"),
])
def test_mic_pins_the_board_cannot_give_are_refused(tmp_path: Path, profile: str, console: str,
                                                    pins: dict[str, int], why: str) -> None:
    cfg = gen.GenConfig(profile=profile, console=console, mic=gen.MicConfig(pins=pins))
    with pytest.raises(UserError, match=why):
        gen.make_plan(make_model(tmp_path / "m"), cfg)


@pytest.mark.parametrize("profile,console,pins", [
    ("esp32s3-n8r2", "usb-serial-jtag", {"din": 35}),  # quad PSRAM leaves GPIO 33-37 free
    ("esp32s3-n16r8", "uart", {"din": 19, "bclk": 20}),  # no USB console: D-/D+ are free
    ("esp32s3-n16r8", "usb-serial-jtag", {"din": 43}),  # no UART console: U0RXD is free
])
def test_mic_pins_free_on_that_board_are_accepted(tmp_path: Path, profile: str, console: str,
                                                  pins: dict[str, int]) -> None:
    cfg = gen.GenConfig(profile=profile, console=console, mic=gen.MicConfig(pins=pins))
    assert gen.make_plan(make_model(tmp_path / "m"), cfg).pins.items() >= pins.items()


def test_sdkconfig_from_an_earlier_gen_is_retired(tmp_path: Path) -> None:
    """After `gen --console uart`, the sdkconfig made for the USB console must not survive into the next build."""
    model, fw = make_model(tmp_path / "m"), firmware_dir(tmp_path)
    gen.generate(model, gen.GenConfig(), fw)
    # What PlatformIO and idf.py leave after a build: the defaults plus everything Kconfig filled in.
    built = (fw / "sdkconfig.defaults").read_text() + "CONFIG_LOG_DEFAULT_LEVEL_INFO=y\n"
    made = [fw / "sdkconfig.esp32s3-n16r8", fw / "build" / "esp32s3-n16r8" / "sdkconfig", fw / "sdkconfig"]
    for path in made:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(built)
    other = fw / "sdkconfig.esp32s3-n8r2"  # another profile's: not this gen's business
    other.write_text("CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG=y\n")

    again = gen.generate(model, gen.GenConfig(), fw)  # same settings: nothing stale
    assert all(p.is_file() for p in made) and not [r for r in again.removed if "sdkconfig" in r]

    r = gen.generate(model, gen.GenConfig(console="uart"), fw)
    for path in made:
        assert not path.exists(), path
        assert path.with_name(path.name + ".old").read_text() == built  # kept, not lost
    assert sum("sdkconfig" in x for x in r.removed) == 3 and other.is_file()
    assert gen.stale_settings(built, (fw / "sdkconfig.defaults").read_text()) == [
        "CONFIG_ESP_CONSOLE_UART_CUSTOM=y", "CONFIG_ESP_CONSOLE_UART_CUSTOM_NUM_0=y",
        "CONFIG_ESP_CONSOLE_UART_BAUDRATE=921600"]


def test_make_flash_regenerates_and_rebuilds_every_time(tmp_path: Path) -> None:
    """`make flash` used to rebuild only when model.json changed, so a changed template, firmware source or
    setting reached the board stale; now gen and build always run (each incremental by itself)."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    root = Path(__file__).resolve().parents[1]
    model = make_model(tmp_path / "m")
    out = subprocess.run(["make", "-n", "-C", str(root), "flash", "BOARD=sim", "PORT=sim",
                          f"MODEL_DIR={model.parent}", "GEN_ARGS=--watch Dog"],
                         capture_output=True, text=True, check=True).stdout
    lines = [ln for ln in out.splitlines() if "-m yamflash" in ln]
    assert [ln.split("-m yamflash ")[1].split()[0] for ln in lines] == ["gen", "build", "flash"], out
    assert "--watch Dog" in lines[0]
