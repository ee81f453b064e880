"""`interpedia import ...` (mounted into the `interpedia` CLI) and `interpedia-webapi serve`."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from interpedia_core import stopping
from interpedia_core.cli import run
from interpedia_db.connect import run_in_database
from interpedia_webapi.settings import WebapiSettings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

commands = typer.Typer(no_args_is_help=True)
app = typer.Typer(
    name="interpedia-webapi", no_args_is_help=True, help="Interpedia's web API and pages."
)


async def _import(
    sessionmaker: "async_sessionmaker[AsyncSession]",
    settings: WebapiSettings,
    location: str,
    verify: bool,
    work_dir: Path | None,
) -> bool:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from interpedia_webapi import feature_import

    factory = settings.open_export

    async with sessionmaker.begin() as session:
        job = await feature_import.start_import(session, location, location_factory=factory)
        await feature_import.reset_failed(session, job.id)
    typer.echo(f"import {job.id}: {job.model_id}/{job.source_id} from {location}")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
    ) as bar:
        task = bar.add_task("files", total=None, rows=0)

        async def on_progress(progress: feature_import.ImportProgress) -> None:
            bar.update(
                task,
                total=progress.files_total,
                completed=progress.files_done,
                rows=progress.rows,
            )

        done = await feature_import.run_import(
            sessionmaker,
            job.id,
            work_dir=work_dir or settings.import_scratch,
            location_factory=factory,
            on_progress=on_progress,
        )
    typer.echo(
        f"{done.status}: {done.files_done}/{done.files_total} files, "
        f"{done.rows:,} rows, {done.files_failed} failed"
        + (
            f", {done.rows_skipped:,} rows skipped (their ids belong to another model or source)"
            if done.rows_skipped
            else ""
        )
    )
    ok = done.status == "complete"
    if verify:
        async with sessionmaker() as session:
            report = await feature_import.verify_import(session, job.id, location_factory=factory)
        for kind, counts in report.counts.items():
            typer.echo(f"  {kind}: {counts}")
        for difference in report.differences:
            typer.secho(f"  ! {difference}", fg=typer.colors.RED)
        typer.echo("verified: complete" if report.ok else "verification found differences")
        ok = ok and report.ok
    return ok


@commands.command("import")
def import_command(
    location: Annotated[str, typer.Argument(help="Folder, http(s) URL or s3:// of one export.")],
    verify: Annotated[bool, typer.Option(help="Compare with the export when done.")] = True,
    work_dir: Annotated[Path | None, typer.Option(help="Scratch folder for downloads.")] = None,
) -> None:
    """Import a Neuronpedia-format export; rerun the same command to resume."""
    settings = WebapiSettings()
    with stopping.stop_on_signals():
        ok = run_in_database(
            settings,
            lambda sessionmaker: _import(sessionmaker, settings, location, verify, work_dir),
        )
    if not ok:
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="INTERPEDIA_WEBAPI_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="INTERPEDIA_WEBAPI_PORT")] = None,
) -> None:
    """Serve the API and pages (port 3000 by default)."""
    from interpedia_core.serving import serve as serve_app
    from interpedia_webapi.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    serve_app(create_app, WebapiSettings(**overrides), "INTERPEDIA_WEBAPI_")  # type: ignore[arg-type]


app.add_typer(commands)


def main() -> None:
    run(app)
