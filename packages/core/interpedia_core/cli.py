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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def _exit_stopped(exc: Stopped) -> NoReturn:
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


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A domain error ends the command with its message on one red line and exit status 2
    (its traceback says nothing the message does not); work stopped by a signal ends with
    what it kept on one yellow line and exit status 128+N (`_exit_stopped`)."""
    try:
        yield
    except InterpediaError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None
    except Stopped as exc:
        _exit_stopped(exc)


def run(command: Callable[[], object]) -> None:
    """Run a command line app (`interpedia`, or a service's own) with `one_line_errors`."""
    with one_line_errors():
        command()


def main() -> None:
    """Entry point: mount every installed command and run it."""
    _mount_plugins()
    run(app)


if __name__ == "__main__":
    main()
