"""The board commands: sim, flash, monitor, ports, validate, bench (a serial port or the virtual board).

Each command is thin: parse, call a library module (imported lazily, so `yamflash -h` starts fast), print.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..board import options as dev
from ..errors import GateFailed, UserError
from ..outputs import check_dir, check_file


@click.command("sim")
@click.option("--flash", "flash_file", default="build/sim/flash.bin", show_default=True,
              help="The virtual board's 16 MB flash file (written by `yamflash flash --port sim`).")
@click.option("--mic", type=click.Path(dir_okay=False), default=None, help="WAV file used as the microphone.")
@click.option("--fast", is_flag=True, help="Feed the microphone as fast as inference takes it (no real time).")
@click.option("--loop", is_flag=True, help="Repeat the microphone file forever.")
@click.option("--stats-period", type=float, default=5.0, show_default=True, help="Seconds between stats events.")
def sim_cmd(flash_file: str, mic: str | None, fast: bool, loop: bool, stats_period: float) -> None:
    """Run a virtual ESP32-S3 on a pseudo-terminal (prints its path); Ctrl-C stops it."""
    from ..board.sim.process import check_flash, check_mic, serve

    check_flash(flash_file)
    if mic:
        check_mic(mic)
    serve(flash_file, mic=mic, fast=fast, loop=loop, stats_period=stats_period)


@click.command("flash")
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
    from ..board import flash as fl

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
    from ..board.connect import target_from_spec

    esptool = {} if is_sim else {"baud": dev.flash_baud(baud), "progress": fl.progress_printer()}
    device = target_from_spec(port, sim_flash=sim_flash).flash(plan, force, click.echo, **esptool)
    if then_monitor:  # the monitor as `yamflash monitor -p <device>` runs it, console rate from this build
        click.get_current_context().invoke(monitor_cmd, port=device, profile=prof, manifest_path=manifest_path,
                                           sim_flash=sim_flash)


@click.command("monitor")
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
    from ..board.monitor import MonitorOptions, monitor

    port = dev.pick_port(port, profile)
    # the rate the firmware was built for (921600 with --console uart), as idf.py monitor does
    baud = dev.console_baud(baud, manifest_path or f"build/firmware/{dev.profile_for(port, profile)}/flash.json")
    monitor(MonitorOptions(port=port, baud=baud, as_json=as_json, log_path=log_path, reset=reset, reset_seq=reset_seq,
                           duration=duration, detect=detect, threshold=threshold, model_json=model_json, mic=mic,
                           fast=fast, sim_flash=sim_flash, plain=plain, scores=scores or 0, elf=elf,
                           profile=dev.profile_for(port, profile)))


@click.command("ports")
@click.option("--json", "as_json", is_flag=True, help="Print the ports as a JSON list.")
def ports_cmd(as_json: bool) -> None:
    """List serial ports (esptool's discovery): chip when its own USB tells it, bridge, USB VID:PID, serial number."""
    from ..board import ports

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


@click.command("validate")
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
@click.option("--reference-model", default=None, metavar="TFLITE",
              help="Compare the board's int8 outputs with this .tflite on the host instead of --model-dir's "
                   "(e.g. the model before convert's bit-exact chip rewrites).")
@click.option("--fail-under", "gates", multiple=True, metavar="SECTION.METRIC=VALUE",
              help="CI gate, repeatable, e.g. patch.bit_exact=1 or float.top1=0.8 (error metrics such as "
                   "rmse or max_lsb fail when over VALUE).")
@click.option("--sim-flash", default="build/sim/flash.bin", show_default=True,
              help="The virtual board's flash file (with --port sim).")


def validate_cmd(port: str | None, baud: int | None, profile: str | None, audio: tuple[str, ...], model_dir: str,
                 as_json: bool, out_path: str | None, plot_dir: str | None, no_float: bool,
                 reference_model: str | None, gates: tuple[str, ...], sim_flash: str) -> None:
    """Compare the board's outputs with the host (TFLite Micro and the float model) on real audio."""
    from ..board import validate as v
    from ..board.connect import open_board

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
    with open_board(port, sim_flash, baud=baud) as board:
        report = v.validate(board, model_dir, files, plot_dir, with_float=not no_float,
                            say=None if as_json else lambda s: click.echo(s, err=True),
                            reference_model=reference_model)
    if not report["overall"].get("patches"):  # a report of nothing must not pass a CI gate
        raise UserError("nothing was compared: every clip is shorter than one patch (0.975 s); pass longer audio.")
    if out_path:
        from ..manifest import atomic_write

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
        raise GateFailed(f"validate: {failed}")


@click.command("bench")
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

    from ..board import bench as b

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
        from ..chip import estimate as em
        from ..chip import report

        model = Path(model_dir) / "model.tflite"
        if not model.is_file():
            raise UserError(f"{model} does not exist; run `yamflash convert --out {model_dir}` first.")
        est = em.estimate(model)
        if board_spec is None:
            click.echo(json.dumps(est, indent=2) if as_json else report.render(est, per_layer=True))
            if out_path:
                b.write_report(out_path, {"kind": "yamflash-estimate", **est})
            return
    assert board_spec is not None
    base = b.load_report(baseline) if baseline else None
    if manifest_path is None:
        guess = Path("build/firmware") / dev.profile_for(board_spec, profile) / "flash.json"
        manifest_path = str(guess) if guess.is_file() else None
    from ..board.connect import open_board

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
        raise GateFailed(f"bench: {len(bad)} regression(s) beyond {tolerance:.0%}; worst {worst['metric']} "
                         f"{worst['change']:+.1%} ({worst['baseline']:,.0f} -> {worst['value']:,.0f})")
