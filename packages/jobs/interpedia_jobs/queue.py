"""The Procrastinate app every Interpedia process shares.

The queue lives in the platform's own Postgres (schema `procrastinate`, created
by migration 0002), so a laptop needs nothing more and production scales by
starting more `interpedia worker` processes on more machines.

Tasks are declared on per-service Blueprints and found through the
`interpedia.jobs` entry-point group, mounted under the entry point's name
(`trainer:train_sae`). A process that only *defers* a job does not need the
task's code: `defer_job` defers by name, so the web API can enqueue a
training job without importing the trainer.
"""

import logging
from importlib.metadata import entry_points
from typing import Any

import procrastinate

from interpedia_db.connect import plain_url

logger = logging.getLogger(__name__)

# Connections see Procrastinate's objects first, then ours.
SEARCH_PATH_OPTION = "-c search_path=procrastinate,public"


def create_job_app(database_url: str, *, load_tasks: bool = True) -> procrastinate.App:
    """A Procrastinate app on `database_url`, with every installed service's tasks mounted."""
    connector = procrastinate.PsycopgConnector(
        conninfo=plain_url(database_url),
        kwargs={"options": SEARCH_PATH_OPTION},
        min_size=1,
        max_size=4,
    )
    app = procrastinate.App(connector=connector)
    if load_tasks:
        for entry in sorted(entry_points(group="interpedia.jobs"), key=lambda e: e.name):
            app.add_tasks_from(entry.load(), namespace=entry.name)
    return app


def known_queues(app: procrastinate.App) -> list[str]:
    """The queues of the tasks this process can run.

    A worker takes jobs only from these: the graph service's tasks run in their own
    environment, and a worker that fetched a job whose task it cannot import would fail it.
    """
    return sorted({task.queue for task in app.tasks.values()})


async def defer_job(
    app: procrastinate.App,
    task_name: str,
    *,
    queue: str,
    lock: str | None = None,
    queueing_lock: str | None = None,
    **task_kwargs: Any,
) -> int:
    """Enqueue `task_name` (e.g. "trainer:train_sae") by name; returns the job id."""
    deferrer = app.configure_task(
        name=task_name, queue=queue, lock=lock, queueing_lock=queueing_lock
    )
    return await deferrer.defer_async(**task_kwargs)
