"""The ``yamflash`` command line: one subcommand per step of the pipeline, one module per wing (model.py,
target.py, board.py), every command registered in one place below. No command module imports numpy or
TensorFlow at module level, so `yamflash -h` starts fast."""

from __future__ import annotations

import contextlib

import click

from .. import __version__
from ..errors import UserError

# `yamflash --help` lists the commands in the order a model goes through them (click sorts them by name).
PIPELINE = ("convert", "inspect", "gen", "build", "flash", "monitor", "validate", "bench", "train", "distill", "sim",
            "ports")


class PipelineGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands, key=lambda n: (PIPELINE.index(n) if n in PIPELINE else len(PIPELINE), n))


@click.group(cls=PipelineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="yamflash")
def cli() -> None:
    """YAMNet on an ESP32-S3: convert, generate, build, flash, monitor, validate."""


def _register() -> None:
    """Every subcommand, added in one place (the command modules import nothing heavy at module level)."""
    from . import board, model, target

    for cmd in (model.convert, model.inspect_cmd, target.gen_cmd, target.build_cmd, board.flash_cmd,
                board.monitor_cmd, board.validate_cmd, board.bench_cmd, model.train, model.distill_cmd,
                board.sim_cmd, board.ports_cmd):
        cli.add_command(cmd)


_register()


def main(argv: list[str] | None = None) -> int:
    """Console entry point: user errors become one line on stderr and exit code 2, never a traceback.

    The user's environment failing under a command (a full disk, a read-only folder, a vanished file) is an
    OSError; it is reported the same way, naming the path and what to do. YAMFLASH_TRACEBACK=1 shows the
    traceback instead, for debugging.
    """
    import os

    # TensorFlow's C++ start-up chatter (CPU features, oneDNN) says nothing a user can act on; silence it for
    # every command, not only under make. A value the user set wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from ..errors import GateFailed
    from ..outputs import describe

    try:
        cli.main(args=argv, prog_name="yamflash", standalone_mode=False)
    except GateFailed as exc:  # the user's own gate: not an error of use
        click.echo(f"yamflash: {exc}", err=True)
        return exc.exit_code
    except UserError as exc:
        click.echo(f"yamflash: error: {exc}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("yamflash: aborted", err=True)
        return 130
    except click.UsageError as exc:  # one line like every other error, with where to read the usage
        cmd = exc.ctx.command_path if exc.ctx is not None else "yamflash"
        click.echo(f"yamflash: error: {exc.format_message().rstrip('.')}; see `{cmd} -h`.", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"yamflash: error: {exc.format_message()}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("yamflash: interrupted", err=True)
        return 130
    except BrokenPipeError:  # `yamflash ... | head`: the reader left; nothing to say, and stdout is gone
        import sys

        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (Python would report the flush failure at exit)
        return 1
    except OSError as exc:
        if os.environ.get("YAMFLASH_TRACEBACK"):
            raise
        click.echo(f"yamflash: error: {describe(exc, verb='use')}", err=True)
        return 2
    return 0
