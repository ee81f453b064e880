"""Activations of custom text: one feature (`/activation/new`) or a whole source."""

from fastapi import APIRouter

from interpedia_clients.inference import models as inference
from interpedia_core.errors import UpstreamError
from interpedia_webapi import catalog, dashboards
from interpedia_webapi.deps import RateLimitDep, SessionDep, SettingsDep, UpstreamsDep
from interpedia_webapi.routes import check_texts
from interpedia_webapi.schemas import (
    ActivationNewRequest,
    ActivationNewResponse,
    ActivationSourceRequest,
    ActivationSourceResponse,
    parse_index,
)
from interpedia_webapi.upstream import upstream_errors

router = APIRouter(tags=["activations"], dependencies=[RateLimitDep])


def _to_response(answer: inference.ActivationSingleResponse) -> ActivationNewResponse:
    values = answer.activation.values
    if len(values) != len(answer.tokens):
        raise UpstreamError("the inference service sent tokens and values of different lengths")
    return ActivationNewResponse(
        tokens=answer.tokens,
        values=values,
        maxValue=max(values, default=0.0),
        maxValueTokenIndex=answer.activation.max_value_index,
        minValue=min(values, default=0.0),
    )


@router.post("/activation/new")
async def activation_new(
    body: ActivationNewRequest, session: SessionDep, settings: SettingsDep, upstreams: UpstreamsDep
) -> ActivationNewResponse | list[ActivationNewResponse]:
    """The feature's value on every token of custom text (one text, or a list of texts)."""
    texts = check_texts(settings, body.customText)
    key = body.feature
    index = parse_index(key.index)
    await dashboards.get_dashboard(session, key.modelId, key.layer, index)  # 404 if unknown
    client = upstreams.inference(key.modelId)
    async with upstream_errors(client, session):
        answer = await client.activation_single_batch(
            inference.ActivationSingleBatchRequest(
                prompts=texts, model=key.modelId, source=key.layer, index=index
            )
        )
    results = [_to_response(result) for result in answer.results]
    return results[0] if isinstance(body.customText, str) else results


@router.post("/activation/source")
async def activation_source(
    body: ActivationSourceRequest,
    session: SessionDep,
    settings: SettingsDep,
    upstreams: UpstreamsDep,
) -> ActivationSourceResponse:
    """Every active feature of one source on each token of custom text."""
    texts = check_texts(settings, body.customText)
    await catalog.get_source(session, body.modelId, body.source)
    client = upstreams.inference(body.modelId)
    async with upstream_errors(client, session):
        answer = await client.activation_source(
            inference.ActivationSourceRequest(prompts=texts, model=body.modelId, source=body.source)
        )
    return ActivationSourceResponse(
        results=[result.model_dump(by_alias=True) for result in answer.results]
    )
