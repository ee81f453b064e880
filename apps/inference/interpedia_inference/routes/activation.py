"""POST /v1/activation/*: feature activations over prompts."""

import asyncio

from fastapi import APIRouter

from interpedia_core.errors import NotFound
from interpedia_core.service import error_responses
from interpedia_inference import activations, raw_activations
from interpedia_inference.deps import EngineDep
from interpedia_inference.schemas.activation import (
    ActivationAllBatchRequest,
    ActivationAllBatchResponse,
    ActivationAllRequest,
    ActivationAllResponse,
    ActivationAttentionRequest,
    ActivationAttentionResponse,
    ActivationRawRequest,
    ActivationRawResponse,
    ActivationSingleBatchRequest,
    ActivationSingleBatchResponse,
    ActivationSingleRequest,
    ActivationSingleResponse,
    ActivationSourceRequest,
    ActivationSourceResponse,
    ActivationTopkByTokenBatchRequest,
    ActivationTopkByTokenBatchResponse,
    ActivationTopkByTokenRequest,
    ActivationTopkByTokenResponse,
)

router = APIRouter(prefix="/activation", tags=["activation"], responses=error_responses(NotFound))


@router.post("/single", response_model=ActivationSingleResponse)
async def activation_single(
    body: ActivationSingleRequest, engine: EngineDep
) -> ActivationSingleResponse:
    """One feature's (or a custom vector's) activation on each token of a prompt."""
    engine.check_model(body.model)
    return await activations.activation_single(
        engine, body.prompt, body.source, body.index, body.vector, body.hook
    )


@router.post("/single-batch", response_model=ActivationSingleBatchResponse)
async def activation_single_batch(
    body: ActivationSingleBatchRequest, engine: EngineDep
) -> ActivationSingleBatchResponse:
    """`activation/single` for several prompts (batched into shared forwards)."""
    engine.check_model(body.model)
    results = await asyncio.gather(
        *(
            activations.activation_single(
                engine, p, body.source, body.index, body.vector, body.hook
            )
            for p in body.prompts
        )
    )
    return ActivationSingleBatchResponse(results=list(results))


@router.post("/all", response_model=ActivationAllResponse)
async def activation_all(body: ActivationAllRequest, engine: EngineDep) -> ActivationAllResponse:
    """The strongest features of a source set over a prompt."""
    engine.check_model(body.model)
    return await activations.activation_all(
        engine,
        body.prompt,
        body.source_set,
        body.selected_sources,
        body.sort_by_token_indexes,
        body.ignore_bos,
        body.feature_filter,
        body.num_results,
    )


@router.post("/all-batch", response_model=ActivationAllBatchResponse)
async def activation_all_batch(
    body: ActivationAllBatchRequest, engine: EngineDep
) -> ActivationAllBatchResponse:
    """`activation/all` for several prompts."""
    engine.check_model(body.model)
    results = await asyncio.gather(
        *(
            activations.activation_all(
                engine,
                p,
                body.source_set,
                body.selected_sources,
                body.sort_by_token_indexes,
                body.ignore_bos,
                body.feature_filter,
                body.num_results,
            )
            for p in body.prompts
        )
    )
    return ActivationAllBatchResponse(results=list(results))


@router.post("/topk-by-token", response_model=ActivationTopkByTokenResponse)
async def activation_topk_by_token(
    body: ActivationTopkByTokenRequest, engine: EngineDep
) -> ActivationTopkByTokenResponse:
    """Each token position's top features."""
    engine.check_model(body.model)
    return await activations.activation_topk_by_token(
        engine, body.prompt, body.source, body.top_k, body.ignore_bos
    )


@router.post("/topk-by-token-batch", response_model=ActivationTopkByTokenBatchResponse)
async def activation_topk_by_token_batch(
    body: ActivationTopkByTokenBatchRequest, engine: EngineDep
) -> ActivationTopkByTokenBatchResponse:
    """`activation/topk-by-token` for several prompts."""
    engine.check_model(body.model)
    results = await asyncio.gather(
        *(
            activations.activation_topk_by_token(
                engine, p, body.source, body.top_k, body.ignore_bos
            )
            for p in body.prompts
        )
    )
    return ActivationTopkByTokenBatchResponse(results=list(results))


@router.post("/source", response_model=ActivationSourceResponse, response_model_by_alias=True)
async def activation_source(
    body: ActivationSourceRequest, engine: EngineDep
) -> ActivationSourceResponse:
    """For each prompt, every active feature of one source with its (token, value) pairs."""
    engine.check_model(body.model)
    results = await activations.activation_source(engine, body.prompts, body.source)
    return ActivationSourceResponse(results=results)


@router.post("/raw", response_model=ActivationRawResponse)
async def activation_raw(body: ActivationRawRequest, engine: EngineDep) -> ActivationRawResponse:
    """Raw activations at a hook point of chosen layers, no SAE needed.

    Each prompt's final token (Neuronpedia's) or every token."""
    if body.model is not None:
        engine.check_model(body.model)
    return await raw_activations.activation_raw(
        engine, body.prompts, body.layers, body.hook_point, body.type == "all_tokens"
    )


@router.post("/attention", response_model=ActivationAttentionResponse)
async def activation_attention(
    body: ActivationAttentionRequest, engine: EngineDep
) -> ActivationAttentionResponse:
    """One layer/head's attention pattern over a prompt, sparsified as Neuronpedia does."""
    engine.check_model(body.model)
    return await raw_activations.activation_attention(engine, body.prompt, body.layer, body.head)
