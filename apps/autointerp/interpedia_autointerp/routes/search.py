"""POST /v1/search/explanations."""

import dataclasses

from fastapi import APIRouter

from interpedia_autointerp import search
from interpedia_autointerp.deps import EmbeddersDep, SessionDep
from interpedia_autointerp.errors import NoDatabase, NotReady
from interpedia_autointerp.schemas.search import (
    SearchExplanationsRequest,
    SearchExplanationsResponse,
    SearchExplanationsResult,
)
from interpedia_core.errors import InvalidInput, UpstreamError
from interpedia_core.service import error_responses

router = APIRouter(prefix="/v1/search", tags=["search"])


@router.post(
    "/explanations",
    response_model=SearchExplanationsResponse,
    responses=error_responses(InvalidInput, UpstreamError, NotReady, NoDatabase),
)
async def search_explanations(
    body: SearchExplanationsRequest, session: SessionDep, embedders: EmbeddersDep
) -> SearchExplanationsResponse:
    """Semantic, keyword or hybrid search over explanations, filtered and paginated."""
    embedder = embedders.get(body.embedding_model)
    hits = await search.search_explanations(
        session,
        embedder,
        body.query,
        body.mode,
        search.SearchFilters(body.model_id, body.source_set, body.source_ids),
        limit=body.limit,
        offset=body.offset,
    )
    return SearchExplanationsResponse(
        mode=body.mode,
        embedding_model=embedder.name,
        limit=body.limit,
        offset=body.offset,
        results=[SearchExplanationsResult(**dataclasses.asdict(h)) for h in hits],
    )
