"""Queue jobs: a job's status and progress, and cancelling it."""

from fastapi import APIRouter

from interpedia_core.errors import Conflict, NotFound
from interpedia_core.service import error_responses
from interpedia_core.wire import BigRowId
from interpedia_jobs.status import cancel_job, get_job
from interpedia_trainer.deps import JobAppDep, SessionDep
from interpedia_trainer.schemas import JobResponse

router = APIRouter(tags=["jobs"], responses=error_responses(NotFound))


@router.get("/jobs/{job_id}", response_model=JobResponse)
async def job_status(job_id: BigRowId, session: SessionDep) -> JobResponse:
    """A job's status, attempts and progress."""
    return JobResponse.model_validate((await get_job(session, job_id)).__dict__)


@router.post(
    "/jobs/{job_id}/cancel", response_model=JobResponse, responses=error_responses(Conflict)
)
async def job_cancel(job_id: BigRowId, session: SessionDep, job_app: JobAppDep) -> JobResponse:
    """Cancel a queued job or abort a running one."""
    await get_job(session, job_id)
    await cancel_job(job_app, job_id)
    return JobResponse.model_validate((await get_job(session, job_id)).__dict__)
