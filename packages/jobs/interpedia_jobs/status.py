"""Reading and cancelling jobs, for any service's `GET /v1/jobs/{id}`."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import procrastinate
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import Conflict, NotFound


@dataclass(frozen=True)
class JobStatus:
    id: int
    task: str
    status: str
    attempts: int
    args: dict[str, Any]
    done: int | None
    total: int | None
    message: str
    details: dict[str, Any]
    updated_at: datetime | None


async def get_job(session: AsyncSession, job_id: int) -> JobStatus:
    row = (
        await session.execute(
            text(
                """
        SELECT j.id, j.task_name, j.status::text, j.attempts, j.args,
               p.done, p.total, coalesce(p.message, ''), coalesce(p.details, '{}'::jsonb),
               p.updated_at
        FROM procrastinate.procrastinate_jobs j LEFT JOIN job_progress p ON p.job_id = j.id
        WHERE j.id = :id
        """
            ),
            {"id": job_id},
        )
    ).first()
    if row is None:
        raise NotFound(f"no job {job_id}")
    return JobStatus(*row)


async def cancel_job(app: procrastinate.App, job_id: int) -> None:
    """Cancel a queued job, or ask a running one to abort (tasks check `should_abort`)."""
    cancelled = await app.job_manager.cancel_job_by_id_async(job_id, abort=True)
    if not cancelled:
        raise Conflict(f"job {job_id} has already finished")
