"""POST /v1/embed, GET /v1/embedding-models."""

from fastapi import APIRouter

from interpedia_autointerp.deps import EmbeddersDep
from interpedia_autointerp.errors import NotReady
from interpedia_autointerp.schemas.embed import (
    EmbeddingModelOut,
    EmbeddingModelsResponse,
    EmbedRequest,
    EmbedResponse,
)
from interpedia_core.errors import InvalidInput, UpstreamError
from interpedia_core.service import error_responses

router = APIRouter(prefix="/v1", tags=["embed"], responses=error_responses(NotReady))


@router.post(
    "/embed",
    response_model=EmbedResponse,
    responses=error_responses(InvalidInput, UpstreamError),
)
async def embed_texts(body: EmbedRequest, embedders: EmbeddersDep) -> EmbedResponse:
    """Embed texts (L2-normalised) with the named model, or the server's default."""
    embedder = embedders.get(body.embedding_model)
    vectors = await embedder.embed(body.texts)
    return EmbedResponse(
        embedding_model=embedder.name, dimensions=embedder.dimensions, embeddings=vectors.tolist()
    )


@router.get("/embedding-models", response_model=EmbeddingModelsResponse)
async def embedding_models(embedders: EmbeddersDep) -> EmbeddingModelsResponse:
    """The embedding models this server offers, and which one is its default."""
    return EmbeddingModelsResponse(
        models=[
            EmbeddingModelOut(
                name=name,
                dimensions=embedders.get(name).dimensions,
                default=name == embedders.default,
            )
            for name in embedders.names()
        ]
    )
