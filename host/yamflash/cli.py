"""The ``yamflash`` command line: one subcommand per step of DESIGN.md's data flow."""

from __future__ import annotations

import click

from . import __version__
from .errors import UserError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="yamflash")
def cli() -> None:
    """YAMNet on an ESP32-S3: convert, generate, build, flash, monitor, validate."""


def main(argv: list[str] | None = None) -> int:
    """Console entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    from . import commands  # noqa: F401  (registers the subcommands)

    try:
        cli.main(args=argv, prog_name="yamflash", standalone_mode=False)
    except UserError as exc:
        click.echo(f"yamflash: error: {exc}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("yamflash: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("yamflash: interrupted", err=True)
        return 130
    return 0

