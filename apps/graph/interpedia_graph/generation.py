"""Generating a graph as a job: check the request, queue it, trace it, store the graph.

Everything a request can get wrong is checked before the job is queued (model, transcoder
set, prompt and its length, limits, slug), so a queued job fails only for reasons nobody
could see coming. The graph is stored in one transaction at the end, so a cancelled,
failed or killed job leaves nothing half-stored; a job retried after its worker died
finds the graph it already stored (the row records the job) and stops there.

At most `max_queued` graph jobs wait or run at once; a request beyond that is refused
(409) rather than queued for a long time. Each graph worker runs one job at a time.
"""

import asyncio
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

import procrastinate
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interpedia_core.errors import Conflict, InvalidInput, NotFound, UpstreamError
from interpedia_db import graph_store
from interpedia_db.models import Graph
from interpedia_formats.neuronpedia_graph import SLUG_PATTERN, MalformedGraphError, parse_graph
from interpedia_graph import attribution, prompts
from interpedia_graph.settings import GraphSettings
from interpedia_graph.transcoder_sets import find_transcoder_set
from interpedia_jobs.queue import defer_job
from interpedia_jobs.status import get_job

TASK = "graph:generate_graph"
QUEUE = "graph"


@dataclass(frozen=True)
class GraphRequest:
    """A checked request: the job's arguments (small JSON)."""

    model_id: str
    transcoder_set: str
    slug: str
    prompt: str  # rendered (chat turns already templated)
    options: attribution.AttributionOptions
    user_id: int | None = None
    creator_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "options": asdict(self.options)}

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> "GraphRequest":
        return cls(**{**values, "options": attribution.AttributionOptions(**values["options"])})


def slug_from_prompt(prompt: str) -> str:
    """A slug like Neuronpedia makes one: the prompt's first letters, then the time in ms."""
    words = re.sub(r"<[^>]*>|\n|user|assistant|system", "", prompt)
    stem = re.sub(r"[^a-zA-Z0-9_-]", "", words)[:16].lower()
    return f"{stem}-{int(time.time() * 1000)}" if stem else f"graph-{int(time.time() * 1000)}"


async def prepare(
    session: AsyncSession,
    settings: GraphSettings,
    tokenizer: Any,
    *,
    model_id: str,
    transcoder_set: str | None,
    prompt: str,
    messages: list[dict[str, str]] | None,
    slug: str | None,
    options: dict[str, Any],
    user_id: int | None = None,
    creator_name: str | None = None,
) -> GraphRequest:
    """Check everything a graph request can get wrong; the checked request, ready to queue."""
    check_model(settings, model_id)
    record = await find_transcoder_set(session, model_id, transcoder_set, settings.transcoder_set)
    rendered = prompts.resolve_prompt(tokenizer, prompt, messages)
    prompts.checked_prompt_ids(tokenizer, rendered, settings.max_prompt_tokens)
    chosen = {
        **options,
        "max_feature_nodes": options.get("max_feature_nodes") or settings.default_max_feature_nodes,
        "batch_size": options.get("batch_size") or settings.default_batch_size,
    }
    if chosen["max_feature_nodes"] > settings.max_feature_nodes_limit:
        raise InvalidInput(
            f"max_feature_nodes may be at most {settings.max_feature_nodes_limit} here"
        )
    slug = slug or slug_from_prompt(rendered)
    if not SLUG_PATTERN.match(slug):
        raise InvalidInput("a slug has 1 to 128 letters, digits, underscores, hyphens and periods")
    await graph_store.check_slug_free(session, model_id, slug)
    return GraphRequest(
        model_id=model_id,
        transcoder_set=record.name,
        slug=slug,
        prompt=rendered,
        options=attribution.AttributionOptions(**chosen),
        user_id=user_id,
        creator_name=creator_name,
    )


def check_model(settings: GraphSettings, model_id: str) -> None:
    if model_id != settings.model_id:
        raise NotFound(f"unknown model {model_id!r}: this graph service traces {settings.model_id}")


async def active_jobs(session: AsyncSession) -> list[int]:
    """Graph jobs waiting or running, oldest first."""
    rows = await session.execute(
        text(
            "SELECT id FROM procrastinate.procrastinate_jobs WHERE task_name = :task "
            "AND status IN ('todo', 'doing') ORDER BY id"
        ),
        {"task": TASK},
    )
    return [row[0] for row in rows]


async def model_jobs(
    session: AsyncSession, model_id: str, ended_within: float, limit: int
) -> list[int]:
    """The model's graph jobs still waiting or running, or whose last word (progress, the
    failure, "stored") is at most `ended_within` seconds old; newest first. What a page
    shows of graphs being made, e.g. the demo's example graph."""
    rows = await session.execute(
        text(
            "SELECT j.id FROM procrastinate.procrastinate_jobs j "
            "LEFT JOIN job_progress p ON p.job_id = j.id "
            "WHERE j.task_name = :task AND j.args #>> '{request,model_id}' = :model_id "
            "AND (j.status IN ('todo', 'doing', 'aborting') "
            "     OR p.updated_at > now() - make_interval(secs => :within)) "
            "ORDER BY j.id DESC LIMIT :limit"
        ),
        {"task": TASK, "model_id": model_id, "within": ended_within, "limit": limit},
    )
    return [row[0] for row in rows]


async def enqueue(
    job_app: procrastinate.App,
    session: AsyncSession,
    settings: GraphSettings,
    request: GraphRequest,
) -> int:
    """Queue the graph job; refused when the queue is full or the same graph is queued."""
    waiting = await active_jobs(session)
    if len(waiting) >= settings.max_queued:
        raise Conflict(
            f"the graph workers are busy ({len(waiting)} graphs waiting or running, the "
            f"limit is {settings.max_queued}); try again when GET /check-busy says false"
        )
    try:
        return await defer_job(
            job_app,
            TASK,
            queue=QUEUE,
            queueing_lock=f"graph:{request.model_id}:{request.slug}",
            request=request.to_json(),
        )
    except procrastinate.exceptions.AlreadyEnqueued:
        raise Conflict(f"a graph {request.slug!r} is already being made") from None


def make_graph(model: Any, request: GraphRequest, progress: attribution.Progress) -> dict[str, Any]:
    """Trace the graph and return its JSON (blocking: run it in a thread)."""
    ids = prompts.prompt_ids(model.tokenizer, request.prompt)
    graph = attribution.trace(model, ids, request.options, progress)
    return attribution.graph_document(
        graph,
        slug=request.slug,
        model_id=request.model_id,
        tokenizer=model.tokenizer,
        options=request.options,
        info={
            "creator_name": request.creator_name or "Anonymous",
            "transcoder_set": request.transcoder_set,
            "neuronpedia_source_set": request.transcoder_set,
            "source_urls": [],
        },
    )


async def store(
    session: AsyncSession, request: GraphRequest, document: dict[str, Any], job_id: int | None
) -> Graph:
    """Check the JSON is Neuronpedia's format (ours must be) and store it with its row."""
    try:
        graph = parse_graph(document)
    except MalformedGraphError as exc:
        raise RuntimeError(f"circuit-tracer's output did not pass the format check: {exc}") from exc
    return await graph_store.store_graph_file(
        session, graph, user_id=request.user_id, job_id=job_id
    )


async def stored_by_job(session: AsyncSession, request: GraphRequest, job_id: int) -> Graph | None:
    """The graph this job stored on an earlier attempt (its worker died after storing)."""
    graph = await graph_store.find_graph(session, request.model_id, request.slug)
    return graph if graph is not None and graph.job_id == job_id else None


@dataclass(frozen=True)
class JobView:
    status: str
    request: GraphRequest
    done: int | None
    total: int | None
    message: str
    graph: Graph | None  # once it succeeded


async def job_view(session: AsyncSession, job_id: int) -> JobView:
    job = await get_job(session, job_id)
    if job.task != TASK:
        raise NotFound(f"no graph job {job_id}")
    request = GraphRequest.from_json(job.args["request"])
    graph = None
    if job.status == "succeeded":
        graph = await graph_store.find_graph(session, request.model_id, request.slug)
    return JobView(job.status, request, job.done, job.total, job.message, graph)


async def wait_for_graph(
    sessionmaker: async_sessionmaker[AsyncSession], job_id: int, wait_seconds: float
) -> Graph:
    """Wait until the job stored its graph (a retried job keeps being waited for)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        async with sessionmaker() as session:
            view = await job_view(session, job_id)
        if view.graph is not None:
            return view.graph
        if view.status in ("cancelled", "aborted"):
            raise Conflict(f"graph job {job_id} was cancelled")
        if view.status in ("failed", "succeeded"):
            raise UpstreamError(f"graph job {job_id} {view.message or 'failed'}")
        if time.monotonic() > deadline:
            raise UpstreamError(
                f"graph job {job_id} did not finish within {wait_seconds:.0f} s; "
                f"follow it at /v1/jobs/{job_id}"
            )
        await asyncio.sleep(0.5)
