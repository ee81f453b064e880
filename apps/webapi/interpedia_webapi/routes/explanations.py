"""Explanation search (keyword, semantic, hybrid), and generating and scoring explanations."""

from typing import Any

from interpedia_core.errors import InvalidInput, NotFound
from interpedia_core.service import error_responses
from interpedia_core.wire import MAX_OFFSET
from interpedia_db.models import User
from interpedia_webapi import dashboards, explaining
from interpedia_webapi.deps import CurrentUser, OptionalUser, SessionDep, UpstreamsDep
from interpedia_webapi.explanation_search import SearchHit, SearchScope, search_explanations
from interpedia_webapi.routes import upstream_router
from interpedia_webapi.schemas import (
    ExplanationGenerateRequest,
    ExplanationScoreRequest,
    ExplanationSearchRequest,
    ExplanationSearchResponse,
    parse_explanation_id,
    parse_index,
)

router = upstream_router("explanations")


def _hit_json(hit: SearchHit) -> dict[str, Any]:
    data = dashboards.explanation_json(hit.explanation, with_scores=False)
    data["cosine_similarity"] = hit.score
    data["score"] = hit.score
    data["neuron"] = {
        "modelId": hit.explanation.model_id,
        "layer": hit.explanation.source_id,
        "index": str(hit.explanation.index),
        "frac_nonzero": hit.frac_nonzero,
        "maxActApprox": hit.max_act,
    }
    return data


async def _search(
    body: ExplanationSearchRequest,
    scope: SearchScope,
    session: SessionDep,
    upstreams: UpstreamsDep,
    viewer: User | None,
) -> ExplanationSearchResponse:
    autointerp = upstreams.autointerp() if upstreams.has_autointerp else None
    hits = await search_explanations(
        session,
        body.query,
        scope,
        mode=body.mode,
        autointerp_client=autointerp,
        limit=body.limit + 1,
        offset=body.offset,
        viewer=viewer,
    )
    hits, more = hits[: body.limit], hits[body.limit :]
    next_offset = body.offset + len(hits)
    return ExplanationSearchResponse(
        request=body.model_dump(),
        results=[_hit_json(h) for h in hits],
        resultsCount=len(hits),
        # The next page must be one this API serves: its offset within MAX_OFFSET.
        hasMore=bool(more) and next_offset <= MAX_OFFSET,
        nextOffset=next_offset,
    )


@router.post("/explanation/search")
async def explanation_search(
    body: ExplanationSearchRequest,
    session: SessionDep,
    upstreams: UpstreamsDep,
    viewer: OptionalUser,
) -> ExplanationSearchResponse:
    """Search explanations of one model's sources (`layers`), or everywhere if none given."""
    scope = SearchScope(model_id=body.modelId, source_ids=body.layers or None)
    return await _search(body, scope, session, upstreams, viewer)


@router.post("/explanation/search-model")
async def explanation_search_model(
    body: ExplanationSearchRequest,
    session: SessionDep,
    upstreams: UpstreamsDep,
    viewer: OptionalUser,
) -> ExplanationSearchResponse:
    """`explanation/search` within one model (`modelId` is required)."""
    if not body.modelId:
        raise InvalidInput("modelId is required")
    return await _search(body, SearchScope(model_id=body.modelId), session, upstreams, viewer)


@router.post("/explanation/search-release")
async def explanation_search_release(
    body: ExplanationSearchRequest,
    session: SessionDep,
    upstreams: UpstreamsDep,
    viewer: OptionalUser,
) -> ExplanationSearchResponse:
    """`explanation/search` within one release's sources (`releaseName` is required)."""
    if not body.releaseName:
        raise InvalidInput("releaseName is required")
    return await _search(
        body, SearchScope(release_name=body.releaseName), session, upstreams, viewer
    )


@router.post("/explanation/search-all")
async def explanation_search_all(
    body: ExplanationSearchRequest,
    session: SessionDep,
    upstreams: UpstreamsDep,
    viewer: OptionalUser,
) -> ExplanationSearchResponse:
    """`explanation/search` over every model."""
    return await _search(body, SearchScope(), session, upstreams, viewer)


@router.post("/explanation/generate", responses=error_responses(NotFound))
async def explanation_generate(
    body: ExplanationGenerateRequest,
    session: SessionDep,
    user: CurrentUser,
    upstreams: UpstreamsDep,
) -> dict[str, Any]:
    """Explain a feature with the named explainer (autointerp) and store the explanation.

    It is stored under the type and model that really wrote it, which autointerp reports."""
    explanation = await explaining.generate_explanation(
        session,
        upstreams.autointerp(),
        body.modelId,
        body.layer,
        parse_index(body.index),
        explainer=body.explanationType,
        author=user,
    )
    await session.commit()
    return {"explanation": dashboards.explanation_json(explanation, with_scores=False)}


@router.post("/explanation/score", responses=error_responses(NotFound))
async def explanation_score(
    body: ExplanationScoreRequest, session: SessionDep, user: CurrentUser, upstreams: UpstreamsDep
) -> dict[str, Any]:
    """Score an explanation with the named scorer (autointerp) and store the score."""
    score = await explaining.score_explanation(
        session,
        upstreams.autointerp(),
        parse_explanation_id(body.explanationId),
        scorer=body.scorerType,
        scorer_model=body.scorerModel,
    )
    await session.commit()
    return {
        "score": {
            "id": str(score.id),
            "value": score.value,
            "explanationScoreTypeName": score.type_name,
            "explanationScoreModelName": score.scorer_model,
            "jsonDetails": score.details,
        }
    }
