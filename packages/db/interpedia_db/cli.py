"""`interpedia db ...`: the embedded server and migrations."""

import typer

from interpedia_core.logs import configure_logging
from interpedia_core.settings import CommonSettings
from interpedia_db import migrate
from interpedia_db.connect import embedded_server, redact, resolve_database_url

app = typer.Typer(name="db", help="Database: start/stop the embedded server, run migrations.")


@app.command()
def start() -> None:
    """Start the embedded PostgreSQL server (or report the one already running)."""
    configure_logging("WARNING")
    server = embedded_server(CommonSettings())
    started = server.ensure_running()
    typer.echo(f"{'started' if started else 'already running'}: {server.url}")


@app.command()
def stop() -> None:
    """Stop the embedded PostgreSQL server."""
    server = embedded_server(CommonSettings())
    if server.running_pid() is None:
        typer.echo("not running")
        return
    server.stop()
    typer.echo("stopped")


@app.command()
def status() -> None:
    """Say whether the embedded server runs, and where."""
    settings = CommonSettings()
    if settings.database_url:
        typer.echo(f"using DATABASE_URL {redact(settings.database_url)}")
        return
    server = embedded_server(settings)
    pid = server.running_pid()
    typer.echo(f"running (pid {pid}): {server.url}" if pid else "not running")


@app.command("migrate")
def migrate_command(revision: str = typer.Argument("head")) -> None:
    """Upgrade the database to REVISION (default: head)."""
    configure_logging("WARNING")
    url = resolve_database_url(CommonSettings(), require_schema=False)
    migrate.upgrade(url, revision)
    typer.echo(f"migrated {redact(url)} to {revision}")
