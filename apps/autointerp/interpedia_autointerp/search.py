"""Explanation search: semantic (cosine on the HNSW index), keyword (full text), hybrid (RRF).

Semantic search embeds the query with the same model as the stored vectors it
is compared with (the local model by default, so no key is needed) and goes
through `interpedia_db.embeddings.nearest_explanations`, which writes the one
query shape that uses the per-model partial HNSW index. Keyword search uses the
generated `search_vector` column (GIN index). Hybrid takes a deeper candidate
list from both and fuses them by reciprocal rank: score = Σ 1 / (60 + rank),
which needs no calibration between cosine and ts_rank scales.
"""

from dataclasses import dataclass, replace
from typing import Literal

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_autointerp.embeddings import Embedder
from interpedia_core.errors import InvalidInput
from interpedia_db.embeddings import DEFAULT_EF_SEARCH, nearest_explanations
from interpedia_db.models import Source

SearchMode = Literal["semantic", "keyword", "hybrid"]
RRF_K = 60
MAX_LIMIT = 100
# Hybrid results are ordered by rank fusion, so its 50-deep semantic leg need not match
# exact search hit for hit: a shorter candidate list keeps both legs within ~10 ms.
HYBRID_EF_SEARCH = 200


@dataclass(frozen=True)
class SearchFilters:
    model_id: str | None = None
    source_set: str | None = None  # needs model_id
    source_ids: list[str] | None = None


@dataclass(frozen=True)
class SearchHit:
    explanation_id: int
    model_id: str
    source_id: str
    index: int
    description: str
    similarity: float | None  # cosine similarity to the query, when the explanation has a vector
    keyword_rank: float | None  # ts_rank_cd, when the query's words match
    score: float  # what the results are ordered by (cosine, ts_rank_cd or RRF)


async def _source_ids(session: AsyncSession, filters: SearchFilters) -> list[str] | None:
    """The source ids to restrict to (None: no restriction; [] matches nothing)."""
    if filters.source_set is None:
        return filters.source_ids
    if filters.model_id is None:
        raise InvalidInput("filtering by source set needs model_id too")
    in_set = list(
        await session.scalars(
            select(Source.id).where(
                Source.model_id == filters.model_id, Source.set_name == filters.source_set
            )
        )
    )
    if filters.source_ids is not None:
        return [s for s in in_set if s in set(filters.source_ids)]
    return in_set


async def semantic_search(
    session: AsyncSession,
    embedder: Embedder,
    query: str,
    filters: SearchFilters = SearchFilters(),
    *,
    limit: int = 10,
    offset: int = 0,
    ef_search: int = DEFAULT_EF_SEARCH,
) -> list[SearchHit]:
    vector = (await embedder.embed([query]))[0].tolist()
    return await _nearest(
        session, embedder, vector, filters, limit=limit, offset=offset, ef_search=ef_search
    )


async def _nearest(
    session: AsyncSession,
    embedder: Embedder,
    vector: list[float],
    filters: SearchFilters,
    *,
    limit: int,
    offset: int = 0,
    ef_search: int = DEFAULT_EF_SEARCH,
) -> list[SearchHit]:
    source_ids = await _source_ids(session, filters)
    if source_ids == []:
        return []
    neighbours = await nearest_explanations(
        session,
        embedder.name,
        vector,
        limit=limit,
        offset=offset,
        model_id=filters.model_id,
        source_ids=source_ids,
        ef_search=max(ef_search, limit + offset),
    )
    return [
        SearchHit(
            n.explanation_id,
            n.model_id,
            n.source_id,
            n.index,
            n.description,
            n.similarity,
            None,
            n.similarity,
        )
        for n in neighbours
    ]


async def keyword_search(
    session: AsyncSession,
    query: str,
    filters: SearchFilters = SearchFilters(),
    *,
    limit: int = 10,
    offset: int = 0,
) -> list[SearchHit]:
    source_ids = await _source_ids(session, filters)
    if source_ids == []:
        return []
    conditions = ""
    params: dict[str, object] = {"query": query, "limit": limit, "offset": offset}
    if filters.model_id is not None:
        conditions += " AND x.model_id = :model_id"
        params["model_id"] = filters.model_id
    if source_ids is not None:
        conditions += " AND x.source_id = ANY(:source_ids)"
        params["source_ids"] = source_ids
    rows = await session.execute(
        text(
            f"""
            SELECT x.id, x.model_id, x.source_id, x.index, x.description,
                   ts_rank_cd(x.search_vector, q) AS rank
            FROM explanations x, websearch_to_tsquery('english', :query) q
            WHERE x.search_vector @@ q{conditions}
            ORDER BY rank DESC, x.id
            LIMIT :limit OFFSET :offset
            """
        ),
        params,
    )
    return [SearchHit(*row[:5], None, float(row[5]), float(row[5])) for row in rows.all()]


async def _similarities(
    session: AsyncSession, embedder: Embedder, vector: list[float], ids: list[int]
) -> dict[int, float]:
    if not ids:
        return {}
    dims = len(vector)
    rows = await session.execute(
        text(
            f"""
            SELECT explanation_id,
                   1 - (embedding::vector({dims}) <=> CAST(:query AS vector({dims})))
            FROM explanation_embeddings
            WHERE embedding_model = :model AND explanation_id = ANY(:ids)
            """
        ),
        {"query": str(vector), "model": embedder.name, "ids": ids},
    )
    return {int(i): float(s) for i, s in rows.all()}


async def hybrid_search(
    session: AsyncSession,
    embedder: Embedder,
    query: str,
    filters: SearchFilters = SearchFilters(),
    *,
    limit: int = 10,
    offset: int = 0,
    ef_search: int = HYBRID_EF_SEARCH,
) -> list[SearchHit]:
    depth = max(50, 2 * (limit + offset))
    vector = (await embedder.embed([query]))[0].tolist()
    semantic = await _nearest(session, embedder, vector, filters, limit=depth, ef_search=ef_search)
    keyword = await keyword_search(session, query, filters, limit=depth)
    fused: dict[int, float] = {}
    hits: dict[int, SearchHit] = {}
    for ranking in (semantic, keyword):
        for rank, hit in enumerate(ranking, 1):
            fused[hit.explanation_id] = fused.get(hit.explanation_id, 0.0) + 1 / (RRF_K + rank)
            known = hits.get(hit.explanation_id)
            hits[hit.explanation_id] = (
                hit
                if known is None
                else replace(
                    known,
                    similarity=known.similarity if known.similarity is not None else hit.similarity,
                    keyword_rank=(
                        known.keyword_rank if known.keyword_rank is not None else hit.keyword_rank
                    ),
                )
            )
    ordered = sorted(fused, key=lambda i: (-fused[i], i))[offset : offset + limit]
    page = [replace(hits[i], score=fused[i]) for i in ordered]
    # Keyword-only hits have no cosine yet: one query fills it in for the page.
    missing = [h.explanation_id for h in page if h.similarity is None]
    if missing:
        found = await _similarities(session, embedder, vector, missing)
        page = [
            replace(h, similarity=found.get(h.explanation_id)) if h.similarity is None else h
            for h in page
        ]
    return page


async def search_explanations(
    session: AsyncSession,
    embedder: Embedder,
    query: str,
    mode: SearchMode = "hybrid",
    filters: SearchFilters = SearchFilters(),
    *,
    limit: int = 10,
    offset: int = 0,
    ef_search: int | None = None,
) -> list[SearchHit]:
    """One page of explanations for `query`; `ef_search` None takes the mode's default."""
    query = query.strip()
    if not query:
        raise InvalidInput("the search query is empty")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise InvalidInput("offset must be 0 or more")
    if mode == "keyword":
        return await keyword_search(session, query, filters, limit=limit, offset=offset)
    by_vector = {
        "semantic": (semantic_search, DEFAULT_EF_SEARCH),
        "hybrid": (hybrid_search, HYBRID_EF_SEARCH),
    }
    if mode not in by_vector:
        raise InvalidInput(f"unknown search mode {mode!r}: use semantic, keyword or hybrid")
    run, default_ef = by_vector[mode]
    return await run(
        session,
        embedder,
        query,
        filters,
        limit=limit,
        offset=offset,
        ef_search=ef_search or default_ef,
    )
