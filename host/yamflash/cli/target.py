"""The firmware commands: gen (headers, partition table, sdkconfig from model.json) and build.

Each command is thin: parse, call a library module (imported lazily, so `yamflash -h` starts fast), print.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserError
from ..outputs import check_dir


@click.command("gen")
@click.option("--model", "model_json", default="build/model/model.json", show_default=True,
              help="model.json written by `yamflash convert`.")
@click.option("--config", "config_path", default=None,
              help="Project settings (default: ./yamflash.toml when present).")
@click.option("--board", "profile", default=None, help="Board profile: esp32s3-n16r8, esp32s3-n8r2 or sim.")
@click.option("--console", type=click.Choice(["usb-serial-jtag", "uart"]), default=None,
              help="Console for logs and commands: the S3's own USB (usb-serial-jtag, the default) or UART0.")
@click.option("--storage", type=click.Choice(["spiffs", "partition"]), default=None,
              help="Model in a SPIFFS file (copied to PSRAM) or a raw partition (memory-mapped).")
@click.option("--model-place", type=click.Choice(["auto", "psram", "flash"]), default=None,
              help="Raw partition: copy the model into PSRAM at boot (faster Invoke) or read it memory-mapped from "
                   "flash; auto (default): the copy when model + arena fit the PSRAM.")
@click.option("--flash-size", default=None, help="Override the board's flash size (e.g. 8MB).")
@click.option("--app-size", default=None, help="Factory app partition size (multiple of 64K, default 2M).")
@click.option("--mic", "mic_type", type=click.Choice(["i2s", "pdm"]), default=None,
              help="Microphone interface: an I2S MEMS microphone (e.g. INMP441) or a PDM one.")
@click.option("--pin", "pins", multiple=True, metavar="NAME=GPIO",
              help="Microphone pin, repeatable: bclk/ws/din (i2s) or clk/din (pdm).")
@click.option("--watch", "classes", multiple=True, metavar="LABEL", help="Class to detect, repeatable.")
@click.option("--threshold", type=float, default=None, help="Detector threshold on the averaged score (0..1).")
@click.option("--window", type=int, default=None, help="Patches averaged.")
@click.option("--min-count", type=int, default=None, help="Consecutive patches above threshold.")
@click.option("--refractory-ms", type=int, default=None,
              help="Quiet time after a detection before the same class can fire again.")
@click.option("--arena-margin", type=int, default=None, help="Percent added to the chip's arena figure (default 2).")
@click.option("--firmware", "firmware_dir", default="firmware", show_default=True,
              help="The firmware folder to generate into.")


def gen_cmd(model_json: str, config_path: str | None, profile: str | None, console: str | None,
            storage: str | None, model_place: str | None, flash_size: str | None, app_size: str | None,
            mic_type: str | None,
            pins: tuple[str, ...], classes: tuple[str, ...], threshold: float | None, window: int | None,
            min_count: int | None, refractory_ms: int | None, arena_margin: int | None, firmware_dir: str) -> None:
    """Generate the firmware's headers, partition table, sdkconfig.defaults and model image."""
    from ..target import gen

    if config_path is None and Path("yamflash.toml").is_file():
        config_path = "yamflash.toml"
    check_dir(firmware_dir, "--firmware")
    if config_path and Path(config_path).exists() and not Path(config_path).is_file():  # a FIFO would block
        raise UserError(f"--config {config_path} is not a regular file; pass a yamflash.toml.")
    cfg = gen.load_config(config_path, dict(
        profile=profile, console=console, storage=storage, model_place=model_place,
        arena_margin_pct=arena_margin, flash_size=flash_size, app_size=app_size, mic_type=mic_type, pins=pins,
        classes=classes, threshold=threshold, window=window, min_count=min_count, refractory_ms=refractory_ms))
    r = gen.generate(model_json, cfg, firmware_dir)
    p = r.plan
    for rel in r.written:
        click.echo(f"  wrote     {Path(firmware_dir) / rel}")
    for rel in r.removed:
        click.echo(f"  removed   {Path(firmware_dir) / rel}")
    mp = p.model_partition
    where = "SPIFFS" if p.storage == "spiffs" else "a raw"
    read = "copied into PSRAM at boot" if p.model_place == "psram" else "memory-mapped"
    need = p.arena_need
    assert need is not None
    click.echo(f"{p.profile.name}: {len(p.ops)} ops, arena {p.arena_bytes:,} bytes in {p.arena_where} (chip needs "
               f"{need.bytes:,}: {'measured' if need.measured else 'a bound, not measured'}), "
               f"model {len(p.model):,} bytes "
               f"in {where} partition of {mp.size:,} at 0x{mp.offset:x} ({p.flash_size >> 20} MB flash), {read}; "
               f"{len(r.written)} file(s) written, {len(r.unchanged)} unchanged.")


@click.command("build")
@click.option("--board", "profile", default=None, help="Profile to build (default: the one `gen` wrote).")
@click.option("--tool", type=click.Choice(["pio", "idf"]), default="pio", show_default=True,
              help="pio: PlatformIO (`pio run`); idf: an exported ESP-IDF (`idf.py build`).")
@click.option("--firmware", "firmware_dir", default="firmware", show_default=True,
              help="The firmware folder `yamflash gen` wrote.")
@click.option("--out", "out_dir", default="build/firmware", show_default=True,
              help="Output folder: <out>/<board>/ gets the images, flash.json, ESP-IDF's flasher_args.json and "
                   "flash_args, and merged-binary.bin.")


def build_cmd(profile: str | None, tool: str, firmware_dir: str, out_dir: str) -> None:
    """Build the firmware (PlatformIO or ESP-IDF) and write the flash manifest."""
    from ..target.build import build

    check_dir(out_dir, "--out")
    manifest = build(firmware_dir, out_dir, profile=profile, tool=tool, echo=click.echo)
    folder = Path(out_dir) / manifest["profile"]
    click.echo(f"flash manifest: {folder / 'flash.json'}")
    for f in manifest["files"]:
        click.echo(f"  {f['offset']:>9}  {f['role']:<16} {f['file']}  ({f['bytes']:,} bytes)")
    if (folder / "flash_args").is_file() and manifest["profile"] != "sim":
        click.echo(f"for ESP-IDF's tools: {folder / 'flasher_args.json'}, {folder / 'flash_args'} (in that folder: "
                   f"`esptool --chip {manifest['chip']} write-flash @flash_args`); one image for web flashers: "
                   f"{folder / 'merged-binary.bin'} (`esptool write-flash 0x0 merged-binary.bin`)")
