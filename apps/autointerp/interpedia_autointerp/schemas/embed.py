"""POST /v1/embed and GET /v1/embedding-models."""

from pydantic import Field

from interpedia_autointerp.schemas.common import BaseSchema


class EmbedRequest(BaseSchema):
    texts: list[str] = Field(min_length=1, max_length=1024)
    embedding_model: str | None = None


class EmbedResponse(BaseSchema):
    embedding_model: str
    dimensions: int
    embeddings: list[list[float]] = Field(description="One L2-normalised vector per text")


class EmbeddingModelOut(BaseSchema):
    name: str
    dimensions: int
    default: bool


class EmbeddingModelsResponse(BaseSchema):
    models: list[EmbeddingModelOut]
