"""Progress of running jobs, readable by any service (`GET /v1/jobs/{id}`, the admin page)."""

import asyncio
import threading
import time
from typing import Any

import procrastinate
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interpedia_db.models import JobProgress


async def report_progress(
    session: AsyncSession,
    job_id: int,
    *,
    done: int,
    total: int | None = None,
    message: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Upsert the progress row of `job_id` (the caller commits)."""
    values = {
        "job_id": job_id,
        "done": done,
        "total": total,
        "message": message,
        "details": details or {},
    }
    statement = insert(JobProgress).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[JobProgress.job_id],
            set_={k: statement.excluded[k] for k in ("done", "total", "message", "details")}
            | {"updated_at": statement.excluded.updated_at},
        )
    )


class ThreadProgress:
    """Lets blocking work in a thread report its job's progress and learn it was cancelled.

    Build it on the event loop (in the task), call it from the thread: each call upserts
    the job's progress row in its own transaction and raises `JobAborted` once the job was
    cancelled, which unwinds the work between two of its steps. Calls closer together than
    `every` seconds are skipped, except the one that reports the end.

    Procrastinate cancels an async task that is aborted (or whose worker shuts down), but
    a thread cannot be cancelled: the task calls `stop()` when it is, and the thread then
    stops at its next step instead of running to the end for nobody.
    """

    def __init__(
        self,
        context: procrastinate.JobContext,
        sessionmaker: async_sessionmaker[AsyncSession],
        every: float = 0.5,
    ) -> None:
        self._context = context
        self._sessionmaker = sessionmaker
        self._loop = asyncio.get_running_loop()
        self._every = every
        self._last = 0.0
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def __call__(
        self, done: int, total: int | None, message: str = "", details: dict | None = None
    ) -> None:
        # The worker learns of a cancellation in the background; this only reads a flag.
        if self._stopped.is_set() or self._context.should_abort():
            raise procrastinate.exceptions.JobAborted(f"job {self._context.job.id} was cancelled")
        now = time.monotonic()
        if now - self._last < self._every and done != total:
            return
        self._last = now

        async def write() -> None:
            async with self._sessionmaker.begin() as session:
                await report_progress(
                    session,
                    self._context.job.id,
                    done=done,
                    total=total,
                    message=message,
                    details=details,
                )

        asyncio.run_coroutine_threadsafe(write(), self._loop).result()
