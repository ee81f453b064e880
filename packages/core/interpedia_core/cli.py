"""The `interpedia` command.

Every installed Interpedia distribution can contribute commands through the
`interpedia.cli` entry-point group: each entry point names a `typer.Typer`.
A Typer created with a `name` becomes a command group (`interpedia models prepare`);
one without a name has its commands merged at the top (`interpedia train`).
This keeps the CLI one command while apps stay independent of each other.
"""

import logging
import os
import sys
from importlib.metadata import entry_points
from typing import NoReturn

import typer

from interpedia_core.errors import InterpediaError
from interpedia_core.stopping import Stopped

app = typer.Typer(
    name="interpedia",
    help="Interpedia: train, browse, search and steer sparse-autoencoder features.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _mount_plugins() -> None:
    for entry in sorted(entry_points(group="interpedia.cli"), key=lambda e: e.name):
        app.add_typer(entry.load())


def exit_stopped(exc: Stopped) -> NoReturn:
    """End a command whose work stopped on request, with what it said, at once.

    Its state is saved by the time `Stopped` gets here. `os._exit` then skips what a
    normal exit waits for: threads still running (an activation producer, a download),
    which the interpreter joins, and the teardown of torch's modules, which takes
    seconds on a busy CPU.
    """
    typer.secho(str(exc), fg=typer.colors.YELLOW, err=True)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exc.exit_code)


def run_cli(cli: typer.Typer) -> None:
    """Run a Typer app: domain errors become one `error:` line (exit 2), stops exit 128+N."""
    try:
        cli()
    except InterpediaError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except Stopped as exc:
        exit_stopped(exc)


def main() -> None:
    """Entry point: mount every installed command and run it."""
    _mount_plugins()
    run_cli(app)


if __name__ == "__main__":
    main()
