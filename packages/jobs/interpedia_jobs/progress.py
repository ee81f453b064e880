"""Progress of running jobs, readable by any service (`GET /v1/jobs/{id}`, the admin page)."""

from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

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
