"""Attribution graphs on the web API: Neuronpedia's graph API over the graph service and the
shared `graphs` tables.

Graphs are made by the graph service (reached through its generated client) and stored by
it; this module reads and deletes them, stores uploaded ones, and keeps subgraphs (a
user's pinned nodes, supernodes and thresholds over a graph). Uploads follow Neuronpedia's
two steps: `signed-put` issues a URL signed by this server (HMAC of the upload's id and
expiry) where the file is PUT, then `save-to-db` checks it is Neuronpedia's graph format
and stores it, whole or not at all.
"""

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from interpedia_clients.graph import AsyncGraphClient
from interpedia_clients.graph import models as graph_models
from interpedia_core.errors import Forbidden, InvalidInput, NotFound, UpstreamError
from interpedia_db import graph_store
from interpedia_db.models import (
    Graph,
    GraphSubgraph,
    GraphUpload,
    Source,
    SourceSet,
    TrainingMetric,
    TrainingRun,
    User,
)
from interpedia_formats.neuronpedia_graph import MalformedGraphError, parse_graph
from interpedia_webapi.upstream import upstream_errors

UPLOAD_LIFETIME = timedelta(hours=1)
TRANSCODER_SET_TYPE = "transcoder"


async def wait_for_job(
    client: AsyncGraphClient, job_id: int, wait_seconds: float
) -> graph_models.GraphJobResponse:
    """Follow a graph job to its end; the job (with its graph) once it succeeded."""
    deadline = time.monotonic() + wait_seconds
    while True:
        async with upstream_errors(client):
            job = await client.get_graph_job(job_id)
        Status = graph_models.Status
        if job.status == Status.succeeded and job.graph is not None:
            return job
        if job.status in (Status.failed, Status.cancelled, Status.aborted):
            raise UpstreamError(f"graph job {job_id} ended {job.status}: {job.message}")
        if time.monotonic() > deadline:
            raise UpstreamError(f"graph job {job_id} is not done after {wait_seconds:.0f} s")
        await asyncio.sleep(0.5)


def json_url(base_url: str, model_id: str, slug: str) -> str:
    return f"{base_url}/api/graph/{model_id}/{slug}/json"


def page_url(base_url: str, model_id: str, slug: str) -> str:
    return f"{base_url}/{model_id}/graph?slug={slug}"


async def owner_of(session: AsyncSession, user_id: int | None) -> User | None:
    return await session.get(User, user_id) if user_id is not None else None


async def transcoder_sets(session: AsyncSession, model_id: str) -> list[str]:
    rows = await session.execute(
        select(SourceSet.name)
        .where(SourceSet.model_id == model_id, SourceSet.type == TRANSCODER_SET_TYPE)
        .order_by(SourceSet.name)
    )
    return list(rows.scalars())


@dataclass
class TranscoderTraining:
    """A transcoder set being trained or getting its dashboards, as the graph page follows it
    (GET /api/graph/transcoder-trainings): the run's latest step (per-layer FVU, L0 and dead
    fraction, as the run tracker records them) and how many of its layers have dashboards."""

    name: str
    status: str
    n_tokens: int
    total_tokens: int
    means: dict[str, float] = field(default_factory=dict)  # fvu, l0, dead_fraction
    layers: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    with_dashboards: int = 0
    sources: int = 0


async def transcoder_trainings(session: AsyncSession, model_id: str) -> list[TranscoderTraining]:
    """The model's newest transcoder run per set, while it is queued or running, or its set's
    dashboards are not all done (what `make demo` builds after the pages are up); newest
    first."""
    newest = (
        select(func.max(TrainingRun.id))
        .where(TrainingRun.model_id == model_id, TrainingRun.architecture == "transcoder")
        .group_by(TrainingRun.name)
    )
    runs = await session.scalars(
        select(TrainingRun).where(TrainingRun.id.in_(newest)).order_by(TrainingRun.id.desc())
    )
    trainings = []
    for run in runs.all():
        done, total = (
            await session.execute(
                select(func.count().filter(Source.has_dashboards), func.count()).where(
                    Source.model_id == model_id, Source.set_name == run.name
                )
            )
        ).one()
        if run.status == "succeeded" and total and done == total:
            continue
        if run.status not in ("queued", "running", "succeeded"):
            continue
        values = await session.scalar(
            select(TrainingMetric.values)
            .where(TrainingMetric.run_id == run.id)
            .order_by(TrainingMetric.step.desc())
            .limit(1)
        )
        values = dict(values or {})
        layers: dict[int, dict[str, float]] = {}
        for key, value in values.items():
            head, _, name = key.partition("/")
            if head.startswith("layer_") and name:
                layers.setdefault(int(head.removeprefix("layer_")), {})[name] = value
        trainings.append(
            TranscoderTraining(
                name=run.name,
                status=run.status,
                n_tokens=int(values.get("tokens", 0)),
                total_tokens=int(run.config.get("total_tokens", 0)),
                means={k: values[k] for k in ("fvu", "l0", "dead_fraction") if k in values},
                layers=sorted(layers.items()),
                with_dashboards=done,
                sources=total,
            )
        )
    return trainings


# --- uploads ----------------------------------------------------------------------------


def _signature(upload_id: str, expires: int, key: bytes) -> str:
    return hmac.new(key, f"{upload_id}:{expires}".encode(), hashlib.sha256).hexdigest()


async def issue_upload(
    session: AsyncSession,
    user: User,
    *,
    filename: str,
    content_length: int,
    max_bytes: int,
    key: bytes,
    base_url: str,
) -> tuple[GraphUpload, str]:
    """Record an upload and the signed URL its file goes to."""
    if not filename.endswith(".json"):
        raise InvalidInput("Invalid file extension - must be .json")
    if content_length > max_bytes:
        raise InvalidInput(f"a graph file may have at most {max_bytes} bytes")
    now = datetime.now(UTC)
    # Uploads never saved are dropped once their URL has expired.
    await session.execute(delete(GraphUpload).where(GraphUpload.expires_at < now))
    expires_at = now + UPLOAD_LIFETIME
    upload = GraphUpload(
        id=graph_store.new_id(),
        user_id=user.id,
        filename=filename,
        content_length=content_length,
        expires_at=expires_at,
    )
    session.add(upload)
    await session.flush()
    expires = int(expires_at.timestamp())
    url = (
        f"{base_url}/api/graph/upload/{upload.id}"
        f"?expires={expires}&signature={_signature(upload.id, expires, key)}"
    )
    return upload, url


async def receive_upload(
    session: AsyncSession, upload_id: str, expires: int, signature: str, data: bytes, key: bytes
) -> None:
    """Keep the PUT file if the URL is ours, unexpired, and the file is as long as declared."""
    if not hmac.compare_digest(signature, _signature(upload_id, expires, key)):
        raise Forbidden("this upload URL is not signed by this server")
    if time.time() > expires:
        raise Forbidden("this upload URL has expired; ask for another (signed-put)")
    upload = await session.get(GraphUpload, upload_id)
    if upload is None:
        raise NotFound(f"no upload {upload_id}")
    if len(data) > upload.content_length:
        raise InvalidInput(f"the file has {len(data)} bytes; {upload.content_length} were declared")
    upload.data = data


async def save_upload(session: AsyncSession, user: User, upload_id: str) -> Graph:
    """Check the uploaded file is a graph in Neuronpedia's format and store it."""
    upload = (
        await session.execute(
            select(GraphUpload)
            .where(GraphUpload.id == upload_id)
            .options(undefer(GraphUpload.data))
        )
    ).scalar_one_or_none()
    if upload is None or upload.user_id != user.id:
        raise NotFound(f"no upload {upload_id} of yours")
    if not upload.data:
        raise InvalidInput("nothing was uploaded to this upload's URL yet")
    try:
        graph = parse_graph(upload.data)
    except MalformedGraphError as exc:
        raise InvalidInput(f"Invalid graph format: {exc}") from None
    stored = await graph_store.store_graph_file(session, graph, user_id=user.id)
    await session.execute(delete(GraphUpload).where(GraphUpload.id == upload_id))
    return stored


# --- subgraphs -------------------------------------------------------------------------


async def save_subgraph(
    session: AsyncSession,
    user: User,
    graph: Graph,
    values: dict[str, Any],
    overwrite_id: str | None,
) -> GraphSubgraph:
    """A new subgraph of the graph, or the caller's own one overwritten."""
    for group in values["supernodes"]:
        if len(group) < 2:
            raise InvalidInput("a supernode is [label, node_id, ...] with at least one node")
    if overwrite_id is not None:
        subgraph = await graph_store.get_subgraph(session, overwrite_id)
        if subgraph.user_id != user.id:
            raise Forbidden("You are not authorized to overwrite this subgraph")
        if subgraph.graph_id != graph.id:
            raise InvalidInput("that subgraph belongs to another graph")
    else:
        subgraph = GraphSubgraph(id=graph_store.new_id(), graph_id=graph.id, user_id=user.id)
        session.add(subgraph)
    for name, value in values.items():
        setattr(subgraph, name, value)
    await session.flush()
    return subgraph


async def subgraphs_of(session: AsyncSession, user: User, graph: Graph) -> list[GraphSubgraph]:
    rows = await session.execute(
        select(GraphSubgraph)
        .where(GraphSubgraph.graph_id == graph.id, GraphSubgraph.user_id == user.id)
        .order_by(GraphSubgraph.created_at.desc())
    )
    return list(rows.scalars())


async def delete_subgraph(session: AsyncSession, user: User, subgraph_id: str) -> None:
    subgraph = await graph_store.get_subgraph(session, subgraph_id)
    if subgraph.user_id != user.id:
        raise Forbidden("You are not authorized to delete this subgraph")
    await session.delete(subgraph)
