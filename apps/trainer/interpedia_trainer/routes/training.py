"""Long work through the queue: training an SAE, computing a source's dashboards."""

from fastapi import APIRouter

from interpedia_core.errors import Conflict, InvalidInput, NotFound
from interpedia_core.service import error_responses
from interpedia_jobs.queue import defer_job
from interpedia_trainer import runs
from interpedia_trainer.deps import JobAppDep, SessionDep, SettingsDep
from interpedia_trainer.schemas import DashboardsRequest, JobsEnqueuedResponse, TrainRequest

router = APIRouter(tags=["training"])


@router.post(
    "/train", response_model=JobsEnqueuedResponse, responses=error_responses(InvalidInput, Conflict)
)
async def train(
    body: TrainRequest, session: SessionDep, settings: SettingsDep, job_app: JobAppDep
) -> JobsEnqueuedResponse:
    """Validate a training config, record the run and enqueue its job."""
    config = runs.validated_train_config(body, settings)
    async with session.begin():
        await runs.check_name_free(session, config)
        run = await runs.create_run(session, config)
    job_id = await defer_job(
        job_app, "trainer:train_sae", queue="trainer", lock=f"train:{run.id}", run_id=run.id
    )
    async with session.begin():
        await runs.attach_job(session, run.id, job_id)
    return JobsEnqueuedResponse(job_ids=[job_id])


@router.post(
    "/dashboards",
    response_model=JobsEnqueuedResponse,
    responses=error_responses(InvalidInput, NotFound, Conflict),
)
async def dashboards(
    body: DashboardsRequest, session: SessionDep, settings: SettingsDep, job_app: JobAppDep
) -> JobsEnqueuedResponse:
    """Enqueue dashboard jobs over feature-index ranges, so several workers share a source."""
    source = await runs.get_source(session, body.model_id, body.source_id)
    corpus = runs.validated_corpus(body.corpus, settings)
    job_ids = []
    for start in range(0, source.d_sae, body.features_per_job):
        stop = min(start + body.features_per_job, source.d_sae)
        job_ids.append(
            await defer_job(
                job_app,
                "trainer:compute_dashboards",
                queue="trainer",
                queueing_lock=f"dashboards:{body.model_id}:{body.source_id}:{start}",
                model_id=body.model_id,
                source_id=body.source_id,
                start=start,
                stop=stop,
                n_prompts=body.n_prompts,
                context_size=body.context_size,
                corpus=corpus,
            )
        )
    return JobsEnqueuedResponse(job_ids=job_ids)
