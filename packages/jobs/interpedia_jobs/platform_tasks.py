"""Tasks of the platform itself (namespace `platform`): diagnostics for operators and tests."""

import asyncio

import procrastinate

from interpedia_core import stopping
from interpedia_jobs.progress import report_progress
from interpedia_jobs.retry import ResumableRetry
from interpedia_jobs.worker import resources_of

blueprint = procrastinate.Blueprint()


@blueprint.task(
    name="probe", queue="platform", pass_context=True, retry=ResumableRetry(max_attempts=3)
)
async def probe(context: procrastinate.JobContext, seconds: float = 0.0) -> None:
    """Sleep `seconds`, reporting progress each second: shows the queue end to end.

    A stop request (the worker shutting down) ends it between seconds; it is requeued.
    """
    sessionmaker = resources_of(context).sessionmaker
    steps = max(1, int(seconds))
    for step in range(steps):
        await stopping.until_stopped(asyncio.sleep(seconds / steps))
        async with sessionmaker.begin() as session:
            await report_progress(session, context.job.id, done=step + 1, total=steps)
