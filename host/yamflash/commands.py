"""Subcommands of the ``yamflash`` CLI. Each one is thin: parse, call a module, print."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import device_options as dev
from .cli import cli
from .distill_config import DistillConfig
from .errors import UserError
from .outputs import check_dir, check_file


@cli.command()
@click.option("--weights", "weights", type=str, default=None,
              help="yamnet.h5 (Google's Keras weights) or a YAMNet .tflite export. Default: download yamnet.h5.")
@click.option("--out", "out_dir", default="build/model", show_default=True, help="Output folder.")
@click.option("--calib-dir", type=str, default=None, help="Folder of real audio for calibration.")
@click.option("--calib-count", type=int, default=1000, show_default=True, help="Calibration patches.")
@click.option("--eval-dir", type=str, default=None, help="Held-out audio (default: 30% of --calib-dir files).")
@click.option("--eval-count", type=int, default=None, help="Evaluate on at most this many patches.")
@click.option("--synthetic-calibration", is_flag=True, help="Calibrate on noise (lower fidelity).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for picking calibration and evaluation patches (same seed and inputs, same model).")
@click.option("--labels", type=str, default=None, help="yamnet_class_map.csv (default: next to the weights).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.option("--no-cache", is_flag=True, help="Convert even when the same conversion is cached (~/.cache/yamflash).")
def convert(weights: str | None, out_dir: str, calib_dir: str | None, calib_count: int, eval_dir: str | None,
            eval_count: int | None, synthetic_calibration: bool, seed: int, labels: str | None, as_json: bool,
            no_cache: bool) -> None:
    """Convert YAMNet to an INT8 TFLite Micro model with a log-mel patch input."""
    from . import convert_cache
    from .convert import convert as run
    from .convert import find_labels
    from .download import default_weights
    from .fidelity import table
    from .progress import log

    if calib_count <= 0:
        raise UserError("--calib-count must be positive.")
    if weights:
        check_weights(weights)  # before the calibration audio: the first thing to fix
    check_dir(out_dir, "--out", files=("model.tflite", "model.json"), need_bytes=1 << 20)
    weights_path = weights or str(default_weights())
    label_path = find_labels(Path(weights_path), labels)
    settings = {"calib_count": calib_count, "eval_count": eval_count, "synthetic": synthetic_calibration,
                "seed": seed, "calib_dir": calib_dir is not None, "eval_dir": eval_dir is not None}
    k = convert_cache.key(weights_path, str(label_path) if label_path else None, calib_dir, eval_dir, settings)
    cached = None if no_cache or not Path(weights_path).is_file() else convert_cache.lookup(k)
    if cached is not None:
        m = convert_cache.restore(cached, out_dir)
        log(f"same weights, audio, settings and yamflash code as the conversion cached in {cached}: reused it "
            f"(--no-cache converts again)")
    else:
        m = run(weights_path, out_dir, calib_dir, calib_count, eval_dir, eval_count, synthetic_calibration, seed,
                labels)
        convert_cache.store(k, out_dir)
    if as_json:
        click.echo(json.dumps(m, indent=2))
        return
    click.echo(table(m["fidelity"]))
    click.echo(f"\nwrote {Path(out_dir) / 'model.tflite'} ({m['model']['bytes']:,} bytes, "
               f"arena {m['arena_bytes']:,} bytes, {m['macs_per_patch'] / 1e6:.1f} M MACs/patch) "
               f"in {m['convert_seconds']:.0f} s")


@cli.command("inspect")
@click.argument("model", type=str)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-arena", is_flag=True, help="Skip measuring the arena in TFLite Micro.")
@click.option("--estimate", is_flag=True, help="Also estimate per-layer latency on an ESP32-S3 with ESP-NN.")
def inspect_cmd(model: str, as_json: bool, no_arena: bool, estimate: bool) -> None:
    """Tensors, ops, parameters, MACs and arena of a .tflite, and whether TFLite Micro can run it."""
    from .inspect_model import inspect

    if not Path(model).is_file():
        raise UserError(f"{model} does not exist; pass a .tflite file.")
    if estimate:
        from . import estimate as em

        e = em.estimate(model, measure_arena=not no_arena)
        click.echo(json.dumps(e, indent=2) if as_json else em.render(e, per_layer=True))
        return
    r = inspect(model, measure_arena=not no_arena)
    if as_json:
        click.echo(json.dumps(r, indent=2))
        return
    click.echo(f"{r['path']}  ({r['bytes']:,} bytes, {r['parameters']:,} parameters, {r['macs'] / 1e6:.1f} M MACs)")
    for kind in ("inputs", "outputs"):
        for t in r[kind]:
            q = f"  scale {t['scale']:.6g} zero point {t['zero_point']}" if "scale" in t else ""
            click.echo(f"  {kind[:-1]:<6} {t['dtype']:<8} {str(t['shape']):<16}{q}")
    click.echo("  ops    " + ", ".join(f"{k} x{v}" for k, v in sorted(r["op_counts"].items())))
    if "arena_bytes" in r:
        from .arena import recorded_chip_arena

        click.echo(f"  arena  {r['arena_bytes']:,} bytes (TFLite Micro on this host, reference kernels)")
        chip, scratch = recorded_chip_arena(model), r.get("espnn_largest_scratch", 0)
        click.echo(f"  chip   {chip:,} bytes with ESP-NN's scratch (measured, model.json beside it)" if chip else
                   f"  chip   at most {r['arena_bytes'] + scratch:,} bytes with ESP-NN's scratch (host arena + largest "
                   f"request {scratch:,}; not measured)")
    click.echo(f"  TFLite Micro: {r['tflm_verdict']}")
    for reason in r["tflm_reasons"]:
        click.echo(f"    - {reason}")
    if "advice" in r:
        click.echo(f"  next: {r['advice']}")


# ---- the board: virtual board, flash, monitor (issue 4) ------------------------------------------------
@cli.command("sim")
@click.option("--flash", "flash_file", default="build/sim/flash.bin", show_default=True,
              help="The virtual board's 16 MB flash file (written by `yamflash flash --port sim`).")
@click.option("--mic", type=click.Path(dir_okay=False), default=None, help="WAV file used as the microphone.")
@click.option("--fast", is_flag=True, help="Feed the microphone as fast as inference takes it (no real time).")
@click.option("--loop", is_flag=True, help="Repeat the microphone file forever.")
@click.option("--stats-period", type=float, default=5.0, show_default=True, help="Seconds between stats events.")
def sim_cmd(flash_file: str, mic: str | None, fast: bool, loop: bool, stats_period: float) -> None:
    """Run a virtual ESP32-S3 on a pseudo-terminal (prints its path); Ctrl-C stops it."""
    from .sim.process import check_flash, check_mic, run

    check_flash(flash_file)
    if mic:
        check_mic(mic)
    run(flash_file, mic, fast, loop, stats_period)


@cli.command("flash")
@dev.port_option
@click.option("--manifest", "manifest_path", default=None,
              help="Flash manifest from `yamflash build` (default build/firmware/<board>/flash.json).")
@click.option("--board", "profile", default="esp32s3-n16r8", show_default=True,
              help="Build profile whose manifest to flash (sim: the virtual board's build, flashed to --port sim).")
@click.option("--model-only", is_flag=True, help="Write only the model partition.")
@click.option("--force", is_flag=True, help="Write every region even when the board's flash already holds it.")
@dev.flash_baud_option
@click.option("--monitor", "then_monitor", is_flag=True,
              help="Then run `yamflash monitor` on the same port (like `idf.py flash monitor`); Ctrl-C stops it.")
@click.option("--sim-flash", default="build/sim/flash.bin", show_default=True, help="Virtual board flash file.")
def flash_cmd(port: str | None, manifest_path: str | None, profile: str, model_only: bool, force: bool,
              baud: int | None, then_monitor: bool, sim_flash: str) -> None:
    """Write bootloader, partition table, app and model to the board (or only the model).

    Only what the flash does not already hold is written: each region's MD5 is read from the board's flash
    (the virtual board's flash file is compared byte for byte), never a version string.
    """
    from . import flash as fl

    port = dev.pick_port(port, profile)
    is_sim = port == "sim"
    if profile == "sim" and not is_sim:
        raise UserError(f"--board sim is the virtual board's build; it cannot go to {port}. Flash it with "
                        "--port sim, or build for the chip (--board esp32s3-n16r8).")
    prof = "sim" if is_sim else profile
    manifest_path = manifest_path or f"build/firmware/{prof}/flash.json"
    plan = fl.load_plan(manifest_path)
    if model_only:
        plan = plan.only(("model",))
        if not plan.regions:
            raise UserError(f"{plan.source} has no model image; run `yamflash build` again.")
    if is_sim:
        fl.flash_sim_cli(plan, sim_flash, force, click.echo)
        device = "sim"
    else:
        device = fl.flash_board_cli(plan, port, dev.flash_baud(baud), force, click.echo, progress=fl.progress_printer())
    if then_monitor:  # the monitor as `yamflash monitor -p <device>` runs it, console rate from this build
        click.get_current_context().invoke(monitor_cmd, port=device, profile=prof, manifest_path=manifest_path,
                                           sim_flash=sim_flash)


@cli.command("monitor")
@dev.port_option
@dev.console_baud_option
@click.option("--board", "profile", default="esp32s3-n16r8", show_default=True,
              help="Build profile whose flash.json gives the console baud (sim: the virtual board).")
@click.option("--manifest", "manifest_path", default=None,
              help="Flash manifest giving the console baud (default build/firmware/<board>/flash.json).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line on stdout (log lines too).")
@click.option("--log", "log_path", default=None, help="Append every event to this JSONL file (flushed per line).")
@click.option("--reset/--no-reset", default=True, show_default=True, help="Reset the board on connect.")
@click.option("--reset-seq", default=None,
              help="DTR/RTS reset sequence in esptool's custom-reset syntax (default D0|R1|W0.2|R0).")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--detect", "detect", multiple=True,
              help="Watch this label (repeatable, any case), e.g. 'Baby cry, infant cry'.")
@click.option("--threshold", type=float, default=None, help="Detector threshold for --detect (0..1).")
@click.option("--model-json", default="build/model/model.json", show_default=True,
              help="model.json whose labels resolve --detect names.")
@click.option("--mic", default=None, help="With --port sim: start the virtual board with this WAV as microphone.")
@click.option("--fast", is_flag=True, help="With --port sim --mic: play the WAV as fast as possible.")
@click.option("--sim-flash", default="build/sim/flash.bin", show_default=True,
              help="The virtual board's flash file (with --port sim).")
@click.option("--plain", is_flag=True,
              help="Plain lines, one per log line or event, no live status (default when stdout is no terminal).")
@click.option("--scores", type=click.IntRange(1, 521), default=None, is_flag=False, flag_value=3,
              help="Print the top K scores of every inference (--scores: 3): why something fired or did not.")
@click.option("--elf", type=click.Path(dir_okay=False), default=None,
              help="Firmware ELF for decoding panic backtraces (default: the newest in firmware/.pio/build/<board> "
                   "or firmware/build).")
def monitor_cmd(port: str | None, baud: int | None, profile: str, manifest_path: str | None, as_json: bool,
                log_path: str | None, reset: bool, reset_seq: str | None, duration: float | None,
                detect: tuple[str, ...], threshold: float | None, model_json: str, mic: str | None, fast: bool,
                sim_flash: str, plain: bool = False, scores: int | None = None, elf: str | None = None) -> None:
    """Show the board's detections, latency, arena, memory and dropped audio live; pass its log through."""
    from .monitor import main

    port = dev.pick_port(port, profile)
    # the rate the firmware was built for (921600 with --console uart), as idf.py monitor does
    baud = dev.console_baud(baud, manifest_path or f"build/firmware/{dev.profile_for(port, profile)}/flash.json")
    main(port=port, baud=baud, as_json=as_json, log_path=log_path, reset=reset, reset_seq=reset_seq,
         duration=duration, detect=detect, threshold=threshold, model_json=model_json, mic=mic, fast=fast,
         sim_flash=sim_flash, plain=plain, scores=scores or 0, elf=elf, profile=dev.profile_for(port, profile))


@cli.command("ports")
@click.option("--json", "as_json", is_flag=True, help="Print the ports as a JSON list.")
def ports_cmd(as_json: bool) -> None:
    """List serial ports (esptool's discovery): chip when its own USB tells it, bridge, USB VID:PID, serial number."""
    from . import ports

    found = ports.list_all()
    if as_json:
        click.echo(json.dumps([p.to_json() for p in found], indent=2))
        return
    if not found:
        click.echo("no serial ports found; plug the board in with a data cable (a charge-only cable shows nothing).")
        return
    click.echo(ports.table(found))
    usb = [p for p in found if p.vid is not None]
    click.echo(f"\n--port auto picks {usb[0].device}" if len(usb) == 1 else
               f"\n--port auto asks which of the {len(usb)} USB ports to use" if usb else
               "\nno USB serial port: --port auto finds no board")
    if any(p.vid is not None and p.chip is None for p in found):
        click.echo("? = behind a UART bridge the chip is known only after a reset into its ROM "
                   "(`esptool -p PORT chip-id`); `yamflash flash` checks it before writing.")


# ---- gen / build (firmware) ---------------------------------------------------------------------------

@cli.command("gen")
@click.option("--model", "model_json", default="build/model/model.json", show_default=True,
              help="model.json written by `yamflash convert`.")
@click.option("--config", "config_path", default=None,
              help="Project settings (default: ./yamflash.toml when present).")
@click.option("--board", "profile", default=None, help="Board profile: esp32s3-n16r8, esp32s3-n8r2 or sim.")
@click.option("--console", type=click.Choice(["usb-serial-jtag", "uart"]), default=None,
              help="Console for logs and commands: the S3's own USB (usb-serial-jtag, the default) or UART0.")
@click.option("--storage", type=click.Choice(["spiffs", "partition"]), default=None,
              help="Model in a SPIFFS file (copied to PSRAM) or a raw partition (memory-mapped).")
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
            storage: str | None, flash_size: str | None, app_size: str | None, mic_type: str | None,
            pins: tuple[str, ...], classes: tuple[str, ...], threshold: float | None, window: int | None,
            min_count: int | None, refractory_ms: int | None, arena_margin: int | None, firmware_dir: str) -> None:
    """Generate the firmware's headers, partition table, sdkconfig.defaults and model image."""
    from . import gen, partitions

    if config_path is None and Path("yamflash.toml").is_file():
        config_path = "yamflash.toml"
    check_dir(firmware_dir, "--firmware")
    if config_path and Path(config_path).exists() and not Path(config_path).is_file():  # a FIFO would block
        raise UserError(f"--config {config_path} is not a regular file; pass a yamflash.toml.")
    cfg = gen.load_config(config_path)
    for attr, value in (("profile", profile), ("console", console), ("storage", storage),
                        ("arena_margin_pct", arena_margin)):
        if value is not None:
            setattr(cfg, attr, value)
    if flash_size:
        cfg.flash_size = partitions.parse_size(flash_size)
    if app_size:
        cfg.app_size = partitions.parse_size(app_size)
    if mic_type and mic_type != cfg.mic.type:
        cfg.mic = gen.MicConfig(type=mic_type, slot=cfg.mic.slot)
    for spec in pins:
        name, _, gpio = spec.partition("=")
        if not gpio.strip().isdigit():
            raise UserError(f"--pin {spec}: write NAME=GPIO, e.g. --pin din=6.")
        cfg.mic.pins[name.strip().lower()] = int(gpio)
    if classes:
        cfg.detector.classes = list(classes)
    for attr, value in (("threshold", threshold), ("window", window), ("min_count", min_count),
                        ("refractory_ms", refractory_ms)):
        if value is not None:
            setattr(cfg.detector, attr, value)
    r = gen.generate(model_json, cfg, firmware_dir)
    p = r.plan
    for rel in r.written:
        click.echo(f"  wrote     {Path(firmware_dir) / rel}")
    for rel in r.removed:
        click.echo(f"  removed   {Path(firmware_dir) / rel}")
    mp = p.model_partition
    where = "SPIFFS" if p.storage == "spiffs" else "a raw"
    need = p.arena_need
    assert need is not None
    click.echo(f"{p.profile.name}: {len(p.ops)} ops, arena {p.arena_bytes:,} bytes in {p.arena_where} (chip needs "
               f"{need.bytes:,}: {'measured' if need.measured else 'a bound, not measured'}), "
               f"model {len(p.model):,} bytes "
               f"in {where} partition of {mp.size:,} at 0x{mp.offset:x} ({p.flash_size >> 20} MB flash); "
               f"{len(r.written)} file(s) written, {len(r.unchanged)} unchanged.")


@cli.command("build")
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
    from .build import build

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


def check_weights(weights: str) -> None:
    if not Path(weights).is_file():
        what = "is a folder" if Path(weights).is_dir() else "does not exist"
        raise UserError(f"--weights {weights} {what}; pass yamnet.h5 or a YAMNet .tflite.")


def parse_where(where: tuple[str, ...]) -> dict[str, str]:
    """`--where COLUMN=VALUE` options as a dict (train and distill filter CSV rows with them)."""
    conds = {}
    for w in where:
        if "=" not in w:
            raise UserError(f"--where {w!r} must look like COLUMN=VALUE.")
        key, value = w.split("=", 1)
        conds[key] = value
    return conds


@cli.command()
@click.option("--weights", required=True, help="yamnet.h5 or a YAMNet .tflite export.")
@click.option("--data", type=str, default=None, help="Folder with one subfolder of audio per class.")
@click.option("--csv", "csv_path", type=str, default=None, help="ESC-50-style CSV (filename, category[, fold]).")
@click.option("--audio-dir", type=str, default=None, help="Where the CSV's files are (default: ../audio beside it).")
@click.option("--where", multiple=True, help="Keep CSV rows with COLUMN=VALUE (e.g. esc10=True).")
@click.option("--keep", multiple=True, help="AudioSet class to keep beside the new ones (repeatable).")
@click.option("--labels", type=str, default=None, help="yamnet_class_map.csv, needed with --keep.")
@click.option("--out", "out_dir", default="build/custom", show_default=True,
              help="Output folder for model.tflite, model.json and training.json.")
@click.option("--test-fraction", type=float, default=0.4, show_default=True,
              help="Share of each class's clips held out for testing when the data has no folds.")
@click.option("--test-fold", type=str, default=None, help="Fold to test on (default: the last, when folds exist).")
@click.option("--calib-count", type=int, default=1000, show_default=True,
              help="Patches that calibrate the INT8 quantization.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the split and the training.")
@click.option("--json", "as_json", is_flag=True, help="Print the training report as JSON.")
def train(weights: str, data: str | None, csv_path: str | None, audio_dir: str | None, where: tuple[str, ...],
          keep: tuple[str, ...], labels: str | None, out_dir: str, test_fraction: float, test_fold: str | None,
          calib_count: int, seed: int, as_json: bool) -> None:
    """Train a classifier for your own sounds on YAMNet embeddings and export it as an INT8 model."""
    from .manifest import load_labels
    from .train import confusion_table, run

    conds = parse_where(where)
    check_weights(weights)
    check_dir(out_dir, "--out", files=("model.tflite", "model.json", "training.json"), need_bytes=1 << 20)
    m = run(weights, data, csv_path, audio_dir, conds, out_dir, list(keep), test_fraction, test_fold, seed,
            calib_count, load_labels(labels) if labels else None)
    t = m["training"]
    if as_json:
        click.echo(json.dumps(t, indent=2))
        return
    names = t["classes"]
    click.echo(f"{len(names)} classes, {t['train_clips']} training clips, {t['test_clips']} test clips ({t['split']})")
    click.echo(f"clip accuracy: float head {t['float']['accuracy']:.1%}, "
               f"INT8 in TFLite Micro {t['int8_tflm']['accuracy']:.1%}")
    click.echo(confusion_table(t["int8_tflm"], names))
    click.echo(f"\nwrote {Path(out_dir) / 'model.tflite'} and model.json ({m['arena_bytes']:,} bytes arena)")


# ---- validate / bench (issue 5) -------------------------------------------------------------------------
@cli.command("validate")
@dev.port_option
@dev.console_baud_option
@click.option("--board", "profile", default=None,
              help="Build profile the board runs, for its console baud (sim: the virtual board). "
                   "Default esp32s3-n16r8.")
@click.option("--audio", multiple=True, required=True, help="Audio file or folder (repeatable).")
@click.option("--model-dir", default="build/model", show_default=True, help="The converted model the board runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--out", "out_path", default=None, help="Also write the JSON report here.")
@click.option("--plots", "plot_dir", default=None, help="Write one PNG per clip into this folder.")
@click.option("--no-float", is_flag=True, help="Skip the float-model comparison (no TensorFlow needed).")
@click.option("--fail-under", "gates", multiple=True, metavar="SECTION.METRIC=VALUE",
              help="CI gate, repeatable, e.g. patch.bit_exact=1 or float.top1=0.8 (error metrics such as "
                   "rmse or max_lsb fail when over VALUE).")
@click.option("--sim-flash", default="build/sim/flash.bin", show_default=True,
              help="The virtual board's flash file (with --port sim).")
def validate_cmd(port: str | None, baud: int | None, profile: str | None, audio: tuple[str, ...], model_dir: str,
                 as_json: bool, out_path: str | None, plot_dir: str | None, no_float: bool, gates: tuple[str, ...],
                 sim_flash: str) -> None:
    """Compare the board's outputs with the host (TFLite Micro and the float model) on real audio."""
    import sys

    from . import validate as v

    profile, port = dev.legacy_board("validate", profile, port)
    port = dev.pick_port(port, profile)
    baud = dev.console_baud(baud, f"build/firmware/{dev.profile_for(port, profile)}/flash.json")
    for g in gates:
        v.parse_gate(g)  # bad gates fail before the board is touched
    if out_path:
        check_file(out_path, "--out")
    if plot_dir:
        check_dir(plot_dir, "--plots")
    files = v.audio_files(audio)
    with v.open_board(port, sim_flash, baud=baud) as board:
        report = v.validate(board, model_dir, files, plot_dir, with_float=not no_float,
                            say=None if as_json else lambda s: click.echo(s, err=True))
    if not report["overall"].get("patches"):  # a report of nothing must not pass a CI gate
        raise UserError("nothing was compared: every clip is shorter than one patch (0.975 s); pass longer audio.")
    if out_path:
        from .manifest import atomic_write

        atomic_write(out_path, v.to_json(report) + "\n", flag="--out")
    if as_json:
        click.echo(v.to_json(report))
    else:
        from rich.console import Console

        con = Console()
        for part in v.render(report):
            con.print(part)
    failed = v.check_gates(report, gates)
    if failed:
        click.echo(f"yamflash: validate: {failed}", err=True)
        sys.exit(1)


@cli.command("bench")
@dev.port_option
@dev.console_baud_option
@click.option("--board", "profile", default=None,
              help="Build profile the board runs: its flash.json gives flash usage and console baud (sim: the "
                   "virtual board). Default esp32s3-n16r8.")
@click.option("--n", "n", type=int, default=50, show_default=True, help="Steady-state invokes.")
@click.option("--warmup", type=int, default=5, show_default=True, help="Warm-up invokes (reported apart).")
@click.option("--audio", default=None, help="Clip streamed for frontend/end-to-end timing (default: noise).")
@click.option("--seconds", type=float, default=10.0, show_default=True, help="Audio streamed through the board.")
@click.option("--no-reset", is_flag=True, help="Do not reset first (no init time or first inference then).")
@click.option("--manifest", "manifest_path", default=None,
              help="Flash manifest for flash usage (default build/firmware/<board>/flash.json when present).")
@click.option("--out", "out_path", default=None, help="Write the report as JSON (atomically).")
@click.option("--baseline", default=None, help="Earlier report to compare with; regressions exit non-zero.")
@click.option("--tolerance", type=float, default=0.10, show_default=True, help="Allowed regression (0.1 = 10 %).")
@click.option("--estimate", is_flag=True, help="Static estimate for the chip from --model-dir (no board needed).")
@click.option("--model-dir", default="build/model", show_default=True,
              help="The converted model (model.tflite) that --estimate reads.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--sim-flash", default="build/sim/flash.bin", show_default=True,
              help="The virtual board's flash file (with --port sim).")
def bench_cmd(port: str | None, baud: int | None, profile: str | None, n: int, warmup: int, audio: str | None,
              seconds: float, no_reset: bool, manifest_path: str | None, out_path: str | None, baseline: str | None,
              tolerance: float, estimate: bool, model_dir: str, as_json: bool, sim_flash: str) -> None:
    """Init time, invoke/frontend statistics, real-time factor, per-op profile, memory and flash of the board."""
    import os
    import sys

    from . import bench as b

    profile, port = dev.legacy_board("bench", profile, port)
    # A board is measured when one is named (-p, $ESPPORT or a --board profile); --estimate alone needs none.
    board_spec = dev.pick_port(port, profile) if port or profile or os.environ.get("ESPPORT") else None
    if board_spec is None and not estimate:
        raise UserError("pass -p/--port PORT|auto|sim to measure a board, or --estimate --model-dir DIR to estimate.")
    if audio and not Path(audio).is_file():
        raise UserError(f"--audio {audio} does not exist; pass an audio file.")
    if out_path:
        check_file(out_path, "--out")
    est = None
    if estimate:
        from . import estimate as em

        model = Path(model_dir) / "model.tflite"
        if not model.is_file():
            raise UserError(f"{model} does not exist; run `yamflash convert --out {model_dir}` first.")
        est = em.estimate(model)
        if board_spec is None:
            click.echo(json.dumps(est, indent=2) if as_json else em.render(est, per_layer=True))
            if out_path:
                b.write_report(out_path, {"kind": "yamflash-estimate", **est})
            return
    assert board_spec is not None
    base = b.load_report(baseline) if baseline else None
    if manifest_path is None:
        guess = Path("build/firmware") / dev.profile_for(board_spec, profile) / "flash.json"
        manifest_path = str(guess) if guess.is_file() else None
    from .validate import open_board

    baud = dev.console_baud(baud, manifest_path)
    with open_board(board_spec, sim_flash, stats_period=1.0, baud=baud) as board:
        report = b.run_bench(board, n=n, warmup=warmup, audio=audio, seconds=seconds, reset=not no_reset,
                             manifest=manifest_path, say=None if as_json else lambda s: click.echo(s, err=True))
    if est is not None:
        report["estimate"] = est
    comparison = b.compare_baseline(report, base, tolerance) if base else None
    if comparison is not None:
        report["baseline"] = {"path": baseline, "tolerance": tolerance, "metrics": comparison}
    if out_path:
        b.write_report(out_path, report)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        from rich.console import Console

        con = Console()
        for part in b.render(report, comparison):
            con.print(part)
    bad = [r for r in comparison or [] if r["regressed"]]
    if bad:
        worst = max(bad, key=lambda r: abs(r["change"]))
        click.echo(f"yamflash: bench: {len(bad)} regression(s) beyond {tolerance:.0%}; worst {worst['metric']} "
                   f"{worst['change']:+.1%} ({worst['baseline']:,.0f} -> {worst['value']:,.0f})", err=True)
        sys.exit(1)


# ---- distill (issue 6) ----------------------------------------------------------------------------------
_DISTILL = DistillConfig()  # the CLI's defaults are the measured configuration (scripts/bench_custom.py)


@cli.command("distill")
@click.option("--weights", required=True, help="The teacher: yamnet.h5 or a YAMNet .tflite export.")
@click.option("--data", type=str, default=None, help="Folder with one subfolder of audio per class.")
@click.option("--csv", "csv_path", type=str, default=None, help="ESC-50-style CSV (filename, category[, fold]).")
@click.option("--audio-dir", type=str, default=None, help="Where the CSV's files are (default: ../audio beside it).")
@click.option("--where", multiple=True, help="Keep CSV rows with COLUMN=VALUE (e.g. esc10=True).")
@click.option("--unlabelled", multiple=True,
              help="Folder of unlabelled audio to distill on (repeatable; default: the labelled set's folders). "
                   "Test clips are always held out.")
@click.option("--out", "out_dir", default="build/distill", show_default=True,
              help="Output folder for model.tflite, model.json and training.json.")
@click.option("--test-fraction", type=float, default=0.4, show_default=True,
              help="Share of each class's clips held out for testing when the data has no folds.")
@click.option("--test-fold", type=str, default=None, help="Fold to test on (default: the last, when folds exist).")
@click.option("--epochs", type=int, default=_DISTILL.epochs, show_default=True,
              help="Passes over the unlabelled views (0: the student cut out of YAMNet as is).")
@click.option("--views", type=int, default=_DISTILL.views, show_default=True,
              help="Views of each unlabelled clip (1: none).")
@click.option("--finetune-epochs", type=int, default=_DISTILL.finetune_epochs, show_default=True,
              help="Then train student and head together on the labelled clips (0: head only).")
@click.option("--calib-count", type=int, default=_DISTILL.calib_count, show_default=True,
              help="Patches that calibrate the INT8 quantization.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the split and the training.")
@click.option("--json", "as_json", is_flag=True, help="Print the training report as JSON.")
def distill_cmd(weights: str, data: str | None, csv_path: str | None, audio_dir: str | None, where: tuple[str, ...],
                unlabelled: tuple[str, ...], out_dir: str, test_fraction: float, test_fold: str | None, epochs: int,
                views: int, finetune_epochs: int, calib_count: int, seed: int, as_json: bool) -> None:
    """Distill YAMNet into a compact student (~180 K parameters), add a head for your classes, export INT8."""
    from .distill import run
    from .train import confusion_table

    conds = parse_where(where)
    check_weights(weights)
    check_dir(out_dir, "--out", files=("model.tflite", "model.json", "training.json"), need_bytes=256 << 10)
    cfg = DistillConfig(epochs=epochs, views=views, calib_count=calib_count, seed=seed,
                        finetune_epochs=finetune_epochs)
    m = run(weights, data, csv_path, audio_dir, conds, list(unlabelled), out_dir, test_fraction, test_fold, cfg)
    t = m["training"]
    if as_json:
        click.echo(json.dumps(t, indent=2))
        return
    names = t["classes"]
    click.echo(f"{len(names)} classes, {t['train_clips']} training clips, {t['test_clips']} test clips ({t['split']}); "
               f"distilled on {t['distill']['patches']} patches of {t['distill']['unlabelled_files']} files")
    click.echo(f"clip accuracy: student float {t['float']['accuracy']:.1%}, INT8 in TFLite Micro "
               f"{t['int8_tflm']['accuracy']:.1%}")
    click.echo(confusion_table(t["int8_tflm"], names))
    click.echo(f"\n{m['parameters']:,} parameters, {m['model']['bytes']:,} bytes model, {m['arena_bytes']:,} bytes "
               f"arena, {m['macs_per_patch']:,} MACs per patch; wrote {Path(out_dir) / 'model.tflite'} and model.json")
