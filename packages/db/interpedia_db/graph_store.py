"""Storing and finding attribution graphs (`graphs`, `graph_subgraphs`).

Two services write graphs: the graph service's worker (a generated graph) and the web API
(an uploaded one), so the rules live here once: a (model, slug) pair names one graph; the
row and its gzipped JSON are written in the caller's transaction, so a graph is stored
whole or not at all; only its owner may replace it. Functions query and add but never
commit.
"""

import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import Conflict, Forbidden, InvalidInput, NotFound
from interpedia_db.models import Graph, GraphSubgraph, Model
from interpedia_formats.neuronpedia_graph import AttributionGraph, graph_gzip


def new_id() -> str:
    """A random id for a graph, subgraph or upload: unguessable, so it can be shared."""
    return secrets.token_hex(12)


@dataclass(frozen=True)
class GraphRecord:
    """What a stored graph is, besides its JSON."""

    model_id: str
    slug: str
    prompt: str
    prompt_tokens: list[str]
    n_nodes: int
    n_links: int
    source_set_name: str | None = None
    title_prefix: str = ""
    job_id: int | None = None


async def find_graph(session: AsyncSession, model_id: str, slug: str) -> Graph | None:
    return (
        await session.execute(select(Graph).where(Graph.model_id == model_id, Graph.slug == slug))
    ).scalar_one_or_none()


async def get_graph(session: AsyncSession, model_id: str, slug: str) -> Graph:
    graph = await find_graph(session, model_id, slug)
    if graph is None:
        raise NotFound(f"no graph {slug!r} of model {model_id}")
    return graph


async def graph_data(session: AsyncSession, model_id: str, slug: str) -> bytes:
    """The graph's JSON, gzipped as stored."""
    row = (
        await session.execute(
            select(Graph.data_gzip).where(Graph.model_id == model_id, Graph.slug == slug)
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no graph {slug!r} of model {model_id}")
    return row


async def check_slug_free(session: AsyncSession, model_id: str, slug: str) -> None:
    if await session.get(Model, model_id) is None:
        raise NotFound(f"unknown model {model_id!r}")
    if await find_graph(session, model_id, slug) is not None:
        raise Conflict(f"model {model_id} already has a graph {slug!r}; choose another slug")


async def store_graph(
    session: AsyncSession, record: GraphRecord, data_gzip: bytes, *, user_id: int | None
) -> Graph:
    """Add the graph, or replace the caller's own graph of that slug.

    A slug taken by someone else (or by nobody in particular, for a caller with an id) is
    a conflict: replacing it would lose another person's graph.
    """
    if await session.get(Model, record.model_id) is None:
        raise InvalidInput(f"unknown model {record.model_id!r}: graphs belong to a known model")
    graph = await find_graph(session, record.model_id, record.slug)
    if graph is not None and (user_id is None or graph.user_id != user_id):
        raise Conflict(
            f"model {record.model_id} already has a graph {record.slug!r} made by someone "
            "else; choose another slug"
        )
    if graph is None:
        graph = Graph(id=new_id(), model_id=record.model_id, slug=record.slug)
        session.add(graph)
    graph.prompt = record.prompt
    graph.prompt_tokens = record.prompt_tokens
    graph.n_nodes = record.n_nodes
    graph.n_links = record.n_links
    graph.source_set_name = record.source_set_name
    graph.title_prefix = record.title_prefix
    graph.job_id = record.job_id
    graph.user_id = user_id
    graph.data_gzip = data_gzip
    await session.flush()
    return graph


def source_set_of(graph: AttributionGraph) -> str | None:
    """The graph's transcoder set, as Neuronpedia records it (`info.neuronpedia_source_set`)."""
    name = (graph.metadata.info or {}).get("neuronpedia_source_set")
    return str(name).rsplit("/", 1)[-1] if name else None


async def store_graph_file(
    session: AsyncSession,
    graph: AttributionGraph,
    *,
    user_id: int | None,
    job_id: int | None = None,
) -> Graph:
    """Store a checked graph file (an upload, an import, a generated graph)."""
    record = GraphRecord(
        model_id=graph.metadata.scan,
        slug=graph.metadata.slug,
        prompt=graph.metadata.prompt,
        prompt_tokens=graph.metadata.prompt_tokens,
        n_nodes=len(graph.nodes),
        n_links=len(graph.links),
        source_set_name=source_set_of(graph),
        job_id=job_id,
    )
    return await store_graph(session, record, graph_gzip(graph), user_id=user_id)


async def list_graphs(
    session: AsyncSession,
    *,
    user_id: int | None = None,
    model_id: str | None = None,
    limit: int = 100,
) -> list[Graph]:
    """Newest first; the JSON is not loaded."""
    query = select(Graph).order_by(Graph.updated_at.desc()).limit(limit)
    if user_id is not None:
        query = query.where(Graph.user_id == user_id)
    if model_id is not None:
        query = query.where(Graph.model_id == model_id)
    return list((await session.execute(query)).scalars())


async def delete_graph(session: AsyncSession, model_id: str, slug: str, user_id: int) -> None:
    graph = await get_graph(session, model_id, slug)
    if graph.user_id != user_id:
        raise Forbidden("only the graph's owner may delete it")
    await session.execute(delete(Graph).where(Graph.id == graph.id))


async def get_subgraph(session: AsyncSession, subgraph_id: str) -> GraphSubgraph:
    subgraph = await session.get(GraphSubgraph, subgraph_id)
    if subgraph is None:
        raise NotFound(f"no subgraph {subgraph_id!r}")
    return subgraph
