"""POST /v1/search/explanations."""

from typing import Literal

from pydantic import Field

from interpedia_autointerp.schemas.common import BaseSchema
from interpedia_core.wire import NonBlankText, Offset


class SearchExplanationsRequest(BaseSchema):
    query: NonBlankText
    mode: Literal["semantic", "keyword", "hybrid"] = "hybrid"
    model_id: str | None = None
    source_set: str | None = Field(default=None, description="Needs model_id")
    source_ids: list[str] | None = None
    embedding_model: str | None = Field(
        default=None, description="Vectors to search (default: the server's embedding model)"
    )
    limit: int = Field(default=10, ge=1, le=100)
    offset: Offset = 0


class SearchExplanationsResult(BaseSchema):
    explanation_id: int
    model_id: str
    source_id: str
    index: int
    description: str
    similarity: float | None = Field(description="Cosine similarity to the query")
    keyword_rank: float | None = Field(description="Full-text rank, when the words match")
    score: float = Field(description="What results are ordered by (cosine, rank or RRF)")


class SearchExplanationsResponse(BaseSchema):
    mode: str
    embedding_model: str
    limit: int
    offset: int
    results: list[SearchExplanationsResult]
