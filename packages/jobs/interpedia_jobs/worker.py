"""Running a worker: shared resources in, stalled jobs of dead workers back to the queue.

A worker killed with `kill -9` cannot mark its job failed, so the job would
stay `doing` forever. Every worker sends heartbeats; each worker also runs a
sweeper that finds jobs whose worker stopped beating for `stalled_after`
seconds and puts them back to `todo`. Jobs must therefore be safe to run twice.

A worker asked to stop (SIGTERM, Ctrl-C: `interpedia_core.stopping`) takes no new job and
passes the stop to its running jobs, which save their state and raise `Stopped` within
seconds; their retry strategy (`interpedia_jobs.retry`) puts them back to `todo`, to
resume on the next worker. Procrastinate's own handling would instead wait for every
running job to finish, however long. A second signal exits at once; the sweeper of
another (or the next) worker then requeues what was running.
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import procrastinate
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interpedia_core import stopping
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
    """Run jobs until stopped, with shared resources and the sweeper.

    Under a stop token (`stopping.stop_on_signals`) the token stops the worker and its
    jobs; without one, procrastinate's own signal handlers do (and wait for the jobs).
    """
    engine = create_engine(database_url)
    resources = WorkerResources(settings, database_url, create_sessionmaker(engine))
    token = stopping.current()
    async with app.open_async():
        sweeper = asyncio.create_task(_sweep_forever(app, stalled_after))
        worker = asyncio.ensure_future(
            app.run_worker_async(
                queues=queues,
                concurrency=concurrency,
                name=name,
                wait=wait,
                update_heartbeat_interval=heartbeat_interval,
                stalled_worker_timeout=stalled_after,
                additional_context={"resources": resources},
                install_signal_handlers=token is None,
            )
        )
        forget = None
        if token is not None:
            # Cancelling `run_worker_async` is procrastinate's graceful stop: no new jobs,
            # then it waits for the running ones, which the same token is stopping.
            loop = asyncio.get_running_loop()
            forget = token.on_request(lambda: loop.call_soon_threadsafe(worker.cancel))
        try:
            await worker
        except asyncio.CancelledError:
            if token is None or not token.requested:
                raise
            logger.info("worker stopped (%s)", token.reason)
        finally:
            if forget is not None:
                forget()
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await engine.dispose()
