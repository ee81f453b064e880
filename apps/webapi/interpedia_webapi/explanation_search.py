"""Explanation search: keyword (Postgres full text), semantic (autointerp) or hybrid.

Keyword search is always available and fully parameterised (`websearch_to_tsquery`).
Semantic search asks the autointerp service, which embeds the query and ranks the
stored embeddings; hybrid merges both rankings by reciprocal rank fusion. Autointerp
serves at most `AUTOINTERP_MAX_LIMIT` results a call and offsets up to `MAX_OFFSET`, so
deeper windows are read in several calls and stop there.
"""

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_clients.autointerp import AsyncAutointerpClient
from interpedia_clients.autointerp import models as autointerp
from interpedia_core.errors import InvalidInput
from interpedia_core.wire import MAX_OFFSET
from interpedia_db.models import Explanation, Feature, Source, SourceSet, User
from interpedia_webapi import visibility
from interpedia_webapi.upstream import upstream_errors

SearchMode = Literal["keyword", "semantic", "hybrid"]
RRF_K = 60
AUTOINTERP_MAX_LIMIT = 100  # autointerp's SearchExplanationsRequest.limit
# How deep hybrid search fuses its two rankings: the first of these that covers the page.
# Fusing rankings of one depth gives one order, so the pages of a search neither repeat
# nor skip results while they stay within one depth.
HYBRID_DEPTHS = (100, 1000, MAX_OFFSET + 101)
# The semantic ranking stops here: ten autointerp calls, and rank 1000 adds 1/1060 to a
# fused score, which no longer moves anything.
HYBRID_SEMANTIC_DEPTH = 1000


@dataclass
class SearchHit:
    explanation: Explanation
    score: float
    frac_nonzero: float | None
    max_act: float | None


@dataclass
class SearchScope:
    model_id: str | None = None
    source_ids: list[str] | None = None
    release_name: str | None = None


async def _release_sources(session: AsyncSession, release: str) -> list[tuple[str, str]]:
    rows = await session.execute(
        select(Source.model_id, Source.id)
        .join(
            SourceSet, (SourceSet.model_id == Source.model_id) & (SourceSet.name == Source.set_name)
        )
        .where(SourceSet.release_name == release)
    )
    return [(m, s) for m, s in rows.all()]


async def keyword_ids(
    session: AsyncSession, query: str, scope: SearchScope, limit: int, offset: int
) -> list[tuple[int, float]]:
    tsquery = func.websearch_to_tsquery("english", query)
    rank = func.ts_rank(Explanation.search_vector, tsquery)
    statement = select(Explanation.id, rank).where(Explanation.search_vector.op("@@")(tsquery))
    statement = await _scoped(session, statement, scope)
    if statement is None:
        return []
    rows = await session.execute(
        statement.order_by(rank.desc(), Explanation.id).limit(limit).offset(offset)
    )
    hits = [(int(i), float(r)) for i, r in rows.all()]
    if not hits and offset == 0:
        # Short or partial words miss the full-text index: fall back to a substring match.
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = select(Explanation.id).where(Explanation.description.ilike(pattern))
        statement = await _scoped(session, statement, scope)
        if statement is None:
            return []
        rows = await session.execute(statement.order_by(Explanation.id).limit(limit))
        hits = [(int(i), 0.0) for (i,) in rows.all()]
    return hits


async def _scoped(session: AsyncSession, statement: Any, scope: SearchScope) -> Any:
    if scope.model_id:
        statement = statement.where(Explanation.model_id == scope.model_id)
    if scope.source_ids:
        statement = statement.where(Explanation.source_id.in_(scope.source_ids))
    if scope.release_name:
        pairs = await _release_sources(session, scope.release_name)
        if not pairs:
            return None
        statement = statement.where(tuple_(Explanation.model_id, Explanation.source_id).in_(pairs))
    return statement


async def semantic_ids(
    session: AsyncSession,
    client: AsyncAutointerpClient,
    query: str,
    scope: SearchScope,
    limit: int,
    offset: int,
) -> list[tuple[int, float]]:
    """Ranked (explanation id, cosine) from the autointerp service (`/v1/search/explanations`),
    read in pages of at most `AUTOINTERP_MAX_LIMIT`; nothing past autointerp's `MAX_OFFSET`."""
    source_ids = scope.source_ids
    model_id = scope.model_id
    if scope.release_name:  # autointerp filters by sources; a release is a set of them
        pairs = await _release_sources(session, scope.release_name)
        if not pairs:
            return []
        source_ids = sorted({s for _, s in pairs} & set(source_ids or {s for _, s in pairs}))
        models = {m for m, _ in pairs}
        model_id = model_id or (models.pop() if len(models) == 1 else None)
    ranked: list[tuple[int, float]] = []
    start, stop = offset, offset + limit
    while start < stop and start <= MAX_OFFSET:
        page_size = min(AUTOINTERP_MAX_LIMIT, stop - start)
        async with upstream_errors(client, session):
            answer = await client.search_explanations(
                autointerp.SearchExplanationsRequest(
                    query=query,
                    mode=autointerp.Mode.semantic,
                    model_id=model_id,
                    source_ids=source_ids,
                    limit=page_size,
                    offset=start,
                )
            )
        ranked += [(r.explanation_id, r.similarity or r.score) for r in answer.results]
        if len(answer.results) < page_size:
            break
        start += page_size
    return ranked


def fuse(*rankings: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: robust to the rankings' scores being on different scales."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, (explanation_id, _) in enumerate(ranking):
            scores[explanation_id] = scores.get(explanation_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


async def search_explanations(
    session: AsyncSession,
    query: str,
    scope: SearchScope,
    *,
    mode: SearchMode,
    autointerp_client: AsyncAutointerpClient | None,
    limit: int = 20,
    offset: int = 0,
    viewer: User | None = None,
) -> list[SearchHit]:
    """Hits in rank order; the viewer finds public explanations and their own, never what
    sits in a source set or vector they may not read (so a page may come back short)."""
    query = query.strip()
    if not query:
        raise InvalidInput("the search query is empty")
    if mode in ("semantic", "hybrid") and autointerp_client is None:
        if mode == "semantic":
            raise InvalidInput("semantic search needs the autointerp service; use mode=keyword")
        mode = "keyword"
    if mode == "keyword":
        ranked = await keyword_ids(session, query, scope, limit, offset)
    elif mode == "semantic":
        assert autointerp_client is not None
        ranked = await semantic_ids(session, autointerp_client, query, scope, limit, offset)
    else:
        assert autointerp_client is not None
        depth = next(d for d in HYBRID_DEPTHS if d >= offset + limit)
        semantic_depth = min(depth, HYBRID_SEMANTIC_DEPTH)
        ranked = fuse(
            await semantic_ids(session, autointerp_client, query, scope, semantic_depth, 0),
            await keyword_ids(session, query, scope, depth, 0),
        )[offset : offset + limit]
    if not ranked:
        return []
    ids = [i for i, _ in ranked]
    rows = await session.execute(
        select(Explanation, Feature.frac_nonzero, Feature.max_act)
        .join(
            Feature,
            (Feature.model_id == Explanation.model_id)
            & (Feature.source_id == Explanation.source_id)
            & (Feature.index == Explanation.index),
        )
        .where(
            Explanation.id.in_(ids),
            visibility.listed(Explanation.visibility, Explanation.author_id, viewer),
            visibility.readable(Feature.visibility, Feature.creator_id, viewer),
        )
    )
    found = {e.id: (e, fnz, mx) for e, fnz, mx in rows.all()}
    hidden = await visibility.hidden_sources(
        session, {(e.model_id, e.source_id) for e, _, _ in found.values()}, viewer
    )
    found = {
        i: hit for i, hit in found.items() if (hit[0].model_id, hit[0].source_id) not in hidden
    }
    return [SearchHit(found[i][0], s, found[i][1], found[i][2]) for i, s in ranked if i in found]
