"""Search via inference: which features fire most on a text, and top features per token."""

from typing import Any

from fastapi import APIRouter

from interpedia_core.errors import NotFound
from interpedia_db.models import SourceSet
from interpedia_webapi import catalog, token_features
from interpedia_webapi.deps import RateLimitDep, SessionDep, SettingsDep, UpstreamsDep
from interpedia_webapi.routes import check_texts
from interpedia_webapi.schemas import SearchAllRequest, SearchTopkByTokenRequest, TokenizeRequest
from interpedia_webapi.upstream import call

router = APIRouter(tags=["inference search"], dependencies=[RateLimitDep])


@router.post("/search-all")
async def search_all(
    body: SearchAllRequest, session: SessionDep, settings: SettingsDep, upstreams: UpstreamsDep
) -> dict[str, Any]:
    """The features of a source set that fire most on `text` (through the inference service)."""
    check_texts(settings, body.text)
    if await session.get(SourceSet, (body.modelId, body.sourceSet)) is None:
        raise NotFound(f"no source set {body.modelId}/{body.sourceSet}")
    answer = await call(
        upstreams.inference(body.modelId),
        "activation_all",
        {
            "prompt": body.text,
            "model": body.modelId,
            "source_set": body.sourceSet,
            "selected_sources": body.selectedLayers,
            "sort_by_token_indexes": body.sortIndexes,
            "ignore_bos": body.ignoreBos,
            "num_results": body.numResults,
        },
    )
    results = [
        {
            "modelId": body.modelId,
            "layer": a.get("source"),
            "index": str(a.get("index")),
            "values": a.get("values", []),
            "maxValue": a.get("max_value"),
            "maxValueTokenIndex": a.get("max_value_index"),
            "sumValues": a.get("sum_values"),
        }
        for a in answer.get("activations", [])
    ]
    return {"result": results, "tokens": answer.get("tokens", []), "counts": answer.get("counts")}


@router.post("/search-topk-by-token")
async def search_topk_by_token(
    body: SearchTopkByTokenRequest,
    session: SessionDep,
    settings: SettingsDep,
    upstreams: UpstreamsDep,
) -> dict[str, Any]:
    """The most specific features of one source at every token of `text`, with their
    explanations (dense features and special tokens left out; see `token_features`)."""
    check_texts(settings, body.text)
    source = await catalog.get_source(session, body.modelId, body.source)
    answer = await call(
        upstreams.inference(body.modelId),
        "activation_topk_by_token",
        {
            "prompt": body.text,
            "model": body.modelId,
            "source": body.source,
            "top_k": min(token_features.candidates(body.numResults), source.d_sae),
            "ignore_bos": body.ignoreBos,
        },
    )
    return await token_features.rank_top_features(
        session,
        body.modelId,
        body.source,
        answer,
        num_results=body.numResults,
        ignore_bos=body.ignoreBos,
        density_threshold=body.densityThreshold,
    )


@router.post("/tokenize")
async def tokenize(
    body: TokenizeRequest, settings: SettingsDep, upstreams: UpstreamsDep
) -> dict[str, Any]:
    check_texts(settings, body.text)
    return await call(
        upstreams.inference(body.model),
        "tokenize",
        {"model": body.model, "text": body.text, "prepend_bos": body.prepend_bos},
    )
