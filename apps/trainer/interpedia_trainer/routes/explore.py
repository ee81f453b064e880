"""A source's feature map and evaluations, queued as jobs (what `interpedia umap` and
`interpedia evaluate --queue` do); every refusal names what the source is missing."""

from fastapi import APIRouter

from interpedia_core.errors import Conflict, InvalidInput, NotFound
from interpedia_core.service import error_responses
from interpedia_trainer import feature_map, recorded, runs
from interpedia_trainer.deps import JobAppDep, SessionDep, SettingsDep
from interpedia_trainer.schemas import EvaluationsRequest, JobsEnqueuedResponse, UmapRequest

router = APIRouter(tags=["explore"])


@router.post(
    "/umap",
    response_model=JobsEnqueuedResponse,
    responses=error_responses(InvalidInput, NotFound, Conflict),
)
async def umap(body: UmapRequest, session: SessionDep, job_app: JobAppDep) -> JobsEnqueuedResponse:
    """Queue the feature map of a source; 409 if it is already queued."""
    source = await runs.get_source(session, body.model_id, body.source_id)
    await feature_map.check_mappable(session, source)
    job_id = await recorded.queue_feature_map(
        recorded.follow_ups(job_app), body.model_id, body.source_id
    )
    if job_id is None:
        raise Conflict(f"the feature map of {body.model_id}/{body.source_id} is already queued")
    return JobsEnqueuedResponse(job_ids=[job_id])


@router.post(
    "/evaluations",
    response_model=JobsEnqueuedResponse,
    responses=error_responses(InvalidInput, NotFound, Conflict),
)
async def evaluations(
    body: EvaluationsRequest, session: SessionDep, settings: SettingsDep, job_app: JobAppDep
) -> JobsEnqueuedResponse:
    """Queue evaluations of a source's SAE; 409 if the same ones are already queued."""
    source = await runs.get_source(session, body.model_id, body.source_id)
    runs.sae_location(source)
    corpus = runs.validated_corpus(body.corpus, settings)
    job_id = await recorded.queue_evaluations(
        recorded.follow_ups(job_app), body.model_id, body.source_id, list(body.kinds), corpus
    )
    if job_id is None:
        raise Conflict(f"these evaluations of {body.model_id}/{body.source_id} are already queued")
    return JobsEnqueuedResponse(job_ids=[job_id])
