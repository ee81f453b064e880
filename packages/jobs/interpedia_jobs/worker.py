"""Running a worker: shared resources in, stalled jobs of dead workers back to the queue.

A worker killed with `kill -9` cannot mark its job failed, so the job would
stay `doing` forever. Every worker sends heartbeats; each worker also runs a
sweeper that finds jobs whose worker stopped beating for `stalled_after`
seconds and puts them back to `todo`. Jobs must therefore be safe to run twice.
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import procrastinate
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interpedia_core.settings import CommonSettings
from interpedia_db.connect import create_engine, create_sessionmaker

logger = logging.getLogger(__name__)


@dataclass
class WorkerResources:
    """What a job gets through `context.additional_context["resources"]`.

    `cache` holds expensive objects a task builds once per worker (a loaded
    model, an SAE), keyed by the task module's own names.
    """

    settings: CommonSettings
    database_url: str
    sessionmaker: async_sessionmaker[AsyncSession]
    cache: dict[str, Any] = field(default_factory=dict)


def resources_of(context: procrastinate.JobContext) -> WorkerResources:
    return context.additional_context["resources"]


async def requeue_stalled_jobs(app: procrastinate.App, stalled_after: float) -> list[int]:
    """Put jobs whose worker stopped heartbeating back in the queue; returns their ids."""
    requeued = []
    for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after):
        try:
            await app.job_manager.retry_job(job)
        except procrastinate.exceptions.ConnectorException:
            continue  # another worker's sweeper got there first
        logger.warning("job %s (%s) was stalled: requeued", job.id, job.task_name)
        requeued.append(job.id)
    return requeued


async def _sweep_forever(app: procrastinate.App, stalled_after: float) -> None:
    while True:
        await asyncio.sleep(stalled_after / 2)
        try:
            await requeue_stalled_jobs(app, stalled_after)
        except Exception:  # a failed sweep must not stop the worker; try again next time
            logger.exception("stalled-job sweep failed")


async def run_worker(
    app: procrastinate.App,
    settings: CommonSettings,
    database_url: str,
    *,
    queues: list[str] | None = None,
    concurrency: int = 1,
    name: str | None = None,
    heartbeat_interval: float = 10.0,
    stalled_after: float = 30.0,
    wait: bool = True,
) -> None:
    """Run jobs until stopped (SIGINT/SIGTERM), with shared resources and the sweeper."""
    engine = create_engine(database_url)
    resources = WorkerResources(settings, database_url, create_sessionmaker(engine))
    async with app.open_async():
        sweeper = asyncio.create_task(_sweep_forever(app, stalled_after))
        try:
            await app.run_worker_async(
                queues=queues,
                concurrency=concurrency,
                name=name,
                wait=wait,
                update_heartbeat_interval=heartbeat_interval,
                stalled_worker_timeout=stalled_after,
                additional_context={"resources": resources},
            )
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await engine.dispose()
