"""Activations of custom text: one feature (`/activation/new`) or a whole source."""

from typing import Any

from interpedia_core.errors import NotFound, UpstreamError
from interpedia_webapi import catalog, dashboards
from interpedia_webapi.deps import SessionDep, SettingsDep, UpstreamsDep
from interpedia_webapi.routes import check_texts, upstream_router
from interpedia_webapi.schemas import (
    ActivationNewRequest,
    ActivationNewResponse,
    ActivationSourceRequest,
    ActivationSourceResponse,
    parse_index,
)
from interpedia_webapi.upstream import call

router = upstream_router("activations", NotFound)  # an unknown feature or source


def _to_response(answer: dict[str, Any]) -> ActivationNewResponse:
    activation = answer.get("activation") or {}
    values = [float(v) for v in activation.get("values", [])]
    tokens = [str(t) for t in answer.get("tokens", [])]
    if len(values) != len(tokens):
        raise UpstreamError("the inference service sent tokens and values of different lengths")
    top = max(range(len(values)), key=values.__getitem__) if values else 0
    return ActivationNewResponse(
        tokens=tokens,
        values=values,
        maxValue=max(values, default=0.0),
        maxValueTokenIndex=int(activation.get("max_value_index", top)),
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
    results = [
        _to_response(
            await call(
                client,
                "activation_single",
                {"prompt": text, "model": key.modelId, "source": key.layer, "index": str(index)},
            )
        )
        for text in texts
    ]
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
    answer = await call(
        upstreams.inference(body.modelId),
        "activation_source",
        {"prompts": texts, "model": body.modelId, "source": body.source},
    )
    return ActivationSourceResponse(results=answer.get("results", []))
