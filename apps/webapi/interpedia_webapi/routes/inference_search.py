"""Search via inference: which features fire most on a text, and top features per token."""

from fastapi import APIRouter

from interpedia_clients.inference import models as inference
from interpedia_core.errors import NotFound
from interpedia_db.models import SourceSet
from interpedia_webapi import catalog, text_search
from interpedia_webapi.deps import RateLimitDep, SessionDep, SettingsDep, UpstreamsDep
from interpedia_webapi.routes import check_texts
from interpedia_webapi.schemas import (
    SearchAllRequest,
    SearchAllResponse,
    SearchTopkByTokenBatchResponse,
    SearchTopkByTokenRequest,
    SearchTopkByTokenResponse,
    TokenizeRequest,
    TokenizeResponse,
)
from interpedia_webapi.upstream import upstream_errors

router = APIRouter(tags=["inference search"], dependencies=[RateLimitDep])


@router.post("/search-all")
async def search_all(
    body: SearchAllRequest, session: SessionDep, settings: SettingsDep, upstreams: UpstreamsDep
) -> SearchAllResponse:
    """The features of a source set that fire most on `text` (through the inference service)."""
    check_texts(settings, body.text)
    if await session.get(SourceSet, (body.modelId, body.sourceSet)) is None:
        raise NotFound(f"no source set {body.modelId}/{body.sourceSet}")
    return await text_search.search_all(
        session,
        upstreams.inference(body.modelId),
        inference.ActivationAllRequest(
            prompt=body.text,
            model=body.modelId,
            source_set=body.sourceSet,
            selected_sources=body.selectedLayers,
            sort_by_token_indexes=body.sortIndexes,
            ignore_bos=body.ignoreBos,
            num_results=body.numResults,
        ),
    )


@router.post("/search-topk-by-token")
async def search_topk_by_token(
    body: SearchTopkByTokenRequest,
    session: SessionDep,
    settings: SettingsDep,
    upstreams: UpstreamsDep,
) -> SearchTopkByTokenResponse | SearchTopkByTokenBatchResponse:
    """The top features of one source at every token of `text` (or of each of several texts)."""
    texts = check_texts(settings, body.text)
    await catalog.get_source(session, body.modelId, body.source)
    answers = await text_search.topk_by_token(
        session,
        upstreams.inference(body.modelId),
        inference.ActivationTopkByTokenBatchRequest(
            prompts=texts,
            model=body.modelId,
            source=body.source,
            top_k=body.numResults,
            ignore_bos=body.ignoreBos,
        ),
    )
    if isinstance(body.text, list):  # Neuronpedia's batch answer: no feature details
        return SearchTopkByTokenBatchResponse(
            results=[text_search.by_token(body.source, a) for a in answers]
        )
    details = await text_search.feature_details(session, body.modelId, body.source, answers[0])
    return text_search.keep(
        text_search.by_token(body.source, answers[0], details),
        ignore_special=body.ignoreBos,
        density_threshold=body.densityThreshold,
    )


@router.post("/tokenize")
async def tokenize(
    body: TokenizeRequest, settings: SettingsDep, upstreams: UpstreamsDep
) -> TokenizeResponse:
    """Token ids and strings of `text`, as the model's inference service tokenizes it."""
    check_texts(settings, body.text)
    client = upstreams.inference(body.model)
    async with upstream_errors(client):
        answer = await client.tokenize(
            inference.TokenizeRequest(
                model=body.model, text=body.text, prepend_bos=body.prepend_bos
            )
        )
    return TokenizeResponse(
        tokens=answer.tokens, token_strings=answer.token_strings, prepend_bos=answer.prepend_bos
    )
