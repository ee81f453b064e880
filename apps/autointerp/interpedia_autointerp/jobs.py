"""Autointerp jobs (namespace `autointerp`): explain, score and embed a whole source.

Each task is a thin shell over `batch`: safe to run twice (finished features are
skipped), so a job requeued after a worker crash resumes where it stopped. The tasks
do not retry: LLM calls are retried by the `openai` SDK alone (see `batch`), and a
job that fails says why in its status; deferring it again resumes it. A job its worker
stopped (SIGTERM, Ctrl-C) is requeued at once and resumes on the next worker.
Progress goes to `job_progress` after every feature. Defer with
`queueing_lock=f"autointerp:explain:{model_id}/{source_id}"` to avoid duplicates.
"""

import asyncio
from typing import Any

import procrastinate

from interpedia_autointerp import batch
from interpedia_autointerp.embeddings import EmbedderRegistry
from interpedia_autointerp.explain import LLM_TYPE_NAME, OFFLINE_TYPE_NAME
from interpedia_autointerp.llm import LLMClient
from interpedia_autointerp.resources import build_embedders, build_llm
from interpedia_autointerp.settings import AutointerpSettings
from interpedia_core.errors import ConfigurationError
from interpedia_jobs.progress import report_progress
from interpedia_jobs.retry import ResumeOnlyWhenStopped
from interpedia_jobs.worker import WorkerResources, resources_of

blueprint = procrastinate.Blueprint()

QUEUE = "autointerp"
# No retries (see above), but a job its worker stopped is requeued to resume.
RETRY = ResumeOnlyWhenStopped()


def _settings(resources: WorkerResources) -> AutointerpSettings:
    cached = resources.cache.get("autointerp.settings")
    if cached is None:
        cached = resources.cache["autointerp.settings"] = AutointerpSettings()
    return cached


async def _embedders(resources: WorkerResources) -> EmbedderRegistry:
    """Loaded once per worker (a few seconds), then shared by every autointerp job."""
    cached = resources.cache.get("autointerp.embedders")
    if cached is None:
        cached = await asyncio.to_thread(build_embedders, _settings(resources))
        resources.cache["autointerp.embedders"] = cached
    return cached


def _llm(resources: WorkerResources) -> LLMClient | None:
    if "autointerp.llm" not in resources.cache:
        resources.cache["autointerp.llm"] = build_llm(_settings(resources))
    return resources.cache["autointerp.llm"]


def _progress(resources: WorkerResources, job_id: int | None) -> batch.Progress:
    async def report(done: int, total: int, message: str) -> None:
        if job_id is None:
            return
        async with resources.sessionmaker.begin() as session:
            await report_progress(session, job_id, done=done, total=total, message=message)

    return report


def _summary(result: batch.BatchResult) -> dict[str, Any]:
    return {
        "total": result.total,
        "done": result.done,
        "skipped": result.skipped,
        "not_fired": result.not_fired,
        "failed": {str(k): v for k, v in list(result.failed.items())[:50]},
    }


@blueprint.task(name="explain_source", queue=QUEUE, retry=RETRY, pass_context=True)
async def explain_source(
    context: procrastinate.JobContext, model_id: str, source_id: str, method: str = "auto"
) -> dict[str, Any]:
    """Explain (and embed) every feature of a source not yet explained by this method."""
    resources = resources_of(context)
    settings = _settings(resources)
    llm = _llm(resources) if method in ("auto", "llm") else None
    if method == "llm" and llm is None:
        raise ConfigurationError("method 'llm' needs INTERPEDIA_AUTOINTERP_LLM_MODEL")
    explainer = batch.llm_explainer(llm) if llm else batch.offline_explainer()
    embedders = await _embedders(resources)
    result = await batch.explain_source(
        resources.sessionmaker,
        model_id,
        source_id,
        explainer,
        LLM_TYPE_NAME if llm else OFFLINE_TYPE_NAME,
        embedder=embedders.get(),
        concurrency=settings.max_concurrency,
        progress=_progress(resources, context.job.id),
    )
    return _summary(result)


@blueprint.task(name="score_source", queue=QUEUE, retry=RETRY, pass_context=True)
async def score_source(
    context: procrastinate.JobContext, model_id: str, source_id: str, scorer: str = "embedding"
) -> dict[str, Any]:
    """Score every explanation of a source that has no score of this type yet."""
    resources = resources_of(context)
    embedders = await _embedders(resources)
    result = await batch.score_source(
        resources.sessionmaker,
        model_id,
        source_id,
        scorer,
        embedder=embedders.get(),
        llm=_llm(resources),
        concurrency=_settings(resources).max_concurrency,
        progress=_progress(resources, context.job.id),
    )
    return _summary(result)


@blueprint.task(name="embed_explanations", queue=QUEUE, retry=RETRY, pass_context=True)
async def embed_explanations(
    context: procrastinate.JobContext,
    model_id: str | None = None,
    source_id: str | None = None,
    embedding_model: str | None = None,
) -> dict[str, Any]:
    """Embed explanations lacking a vector of this model (e.g. re-embed imports locally)."""
    resources = resources_of(context)
    embedders = await _embedders(resources)
    result = await batch.embed_explanations(
        resources.sessionmaker,
        embedders.get(embedding_model),
        model_id=model_id,
        source_id=source_id,
        progress=_progress(resources, context.job.id),
    )
    return _summary(result)
