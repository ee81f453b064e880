"""Concept testing: the builtin concept sets, and scoring concepts as a job."""

from fastapi import APIRouter

from interpedia_core.errors import InvalidInput, NotFound
from interpedia_core.service import error_responses
from interpedia_jobs.queue import defer_job
from interpedia_trainer import runs
from interpedia_trainer.concepts import builtin_concepts
from interpedia_trainer.deps import JobAppDep, SessionDep, SettingsDep
from interpedia_trainer.schemas import (
    BuiltinConceptSet,
    ConceptsRequest,
    ConceptsResponse,
    JobsEnqueuedResponse,
)

router = APIRouter(tags=["concepts"])


@router.get("/concepts", response_model=ConceptsResponse)
async def list_concepts() -> ConceptsResponse:
    """The builtin concept sets that `POST /v1/concepts` scores when given none."""
    return ConceptsResponse(
        concepts=[
            BuiltinConceptSet(name=name, n_examples=len(examples), examples=examples)
            for name, examples in builtin_concepts().items()
        ]
    )


@router.post(
    "/concepts",
    response_model=JobsEnqueuedResponse,
    responses=error_responses(InvalidInput, NotFound),
)
async def concept_scores(
    body: ConceptsRequest, session: SessionDep, settings: SettingsDep, job_app: JobAppDep
) -> JobsEnqueuedResponse:
    """Enqueue a concept-scores job; its table appears in `GET /v1/jobs/{id}` details."""
    source = await runs.get_source(session, body.model_id, body.source_id)
    runs.sae_location(source)  # a source without weights fails now, not on the worker
    corpus = runs.validated_corpus(body.corpus, settings)
    concepts = None if body.concepts is None else {c.name: c.examples for c in body.concepts}
    job_id = await defer_job(
        job_app,
        "trainer:concept_scores",
        queue="trainer",
        model_id=body.model_id,
        source_id=body.source_id,
        concepts=concepts,
        top_n=body.top_n,
        base_documents=body.base_documents,
        corpus=corpus,
    )
    return JobsEnqueuedResponse(job_ids=[job_id])
