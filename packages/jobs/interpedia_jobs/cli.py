"""`interpedia worker`: run jobs from the queue."""

import asyncio

import typer

from interpedia_core import stopping
from interpedia_core.logs import configure_logging
from interpedia_core.settings import CommonSettings
from interpedia_db.connect import resolve_database_url
from interpedia_jobs.queue import create_job_app, known_queues
from interpedia_jobs.worker import run_worker

commands = typer.Typer()


@commands.command()
def worker(
    queue: list[str] = typer.Option(
        None,
        "--queue",
        "-q",
        envvar="INTERPEDIA_WORKER_QUEUES",
        help="Queues to take jobs from (repeat); default: those of every installed task.",
    ),
    concurrency: int = typer.Option(
        1, envvar="INTERPEDIA_WORKER_CONCURRENCY", help="Jobs this worker runs at once."
    ),
    name: str = typer.Option(
        None, envvar="INTERPEDIA_WORKER_NAME", help="Name shown in job records and logs."
    ),
    heartbeat: float = typer.Option(
        10.0, envvar="INTERPEDIA_WORKER_HEARTBEAT_SECONDS", help="Seconds between heartbeats."
    ),
    stalled_after: float = typer.Option(
        30.0,
        envvar="INTERPEDIA_WORKER_STALLED_AFTER_SECONDS",
        help="Requeue jobs of workers silent this many seconds (killed or lost).",
    ),
) -> None:
    """Run a worker: takes jobs from the shared Postgres queue until Ctrl-C."""
    settings = CommonSettings()
    configure_logging(settings.log_level)
    database_url = resolve_database_url(settings)
    app = create_job_app(database_url)
    # First SIGTERM/Ctrl-C: running jobs stop and are requeued; second: exit at once.
    with stopping.stop_on_signals() as stop:
        asyncio.run(
            run_worker(
                app,
                settings,
                database_url,
                queues=queue or known_queues(app),
                concurrency=concurrency,
                name=name,
                heartbeat_interval=heartbeat,
                stalled_after=stalled_after,
            )
        )
    # Stopped, not returned: the exit then skips the interpreter's teardown of torch and
    # friends, seconds on a busy CPU, so a stopped worker is gone as soon as its jobs are.
    stop.check()
