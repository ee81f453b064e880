"""Activations of custom text: one feature (`/activation/new`), a whole source, the raw
hook values (`/activation/raw`, JSON or .npy) or one head's attention pattern."""

from fastapi import Response

from interpedia_clients.inference import models as inference
from interpedia_core.errors import NotFound, UpstreamError
from interpedia_webapi import activation_export, catalog, dashboards
from interpedia_webapi.deps import SessionDep, SettingsDep, UpstreamsDep
from interpedia_webapi.routes import check_texts, upstream_router
from interpedia_webapi.schemas import (
    ActivationAttentionRequest,
    ActivationAttentionResponse,
    ActivationNewRequest,
    ActivationNewResponse,
    ActivationRawRequest,
    ActivationRawResponse,
    ActivationSourceRequest,
    ActivationSourceResponse,
    parse_index,
)
from interpedia_webapi.upstream import upstream_errors

router = upstream_router("activations", NotFound)  # an unknown feature or source


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
        dfaValues=answer.activation.dfa_values,
        dfaMaxValue=answer.activation.dfa_max_value,
        dfaTargetIndex=answer.activation.dfa_target_index,
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


NPY = "application/octet-stream"


@router.post(
    "/activation/raw",
    response_model=ActivationRawResponse,
    responses={200: {"content": {NPY: {"schema": {"type": "string", "format": "binary"}}}}},
)
async def activation_raw(
    body: ActivationRawRequest, settings: SettingsDep, upstreams: UpstreamsDep
) -> ActivationRawResponse | Response:
    """Raw hook activations of every token at chosen layers, as JSON or (`format: npy`) a
    downloadable float32 .npy array [layers, tokens, d_hook]."""
    check_texts(settings, body.prompt)
    client = upstreams.inference(body.modelId)
    async with upstream_errors(client):
        answer = await client.activation_raw(
            inference.ActivationRawRequest(
                prompts=[body.prompt],
                model=body.modelId,
                layers=body.layers,
                hook_point=body.hookPoint,
                type=inference.Type.all_tokens,
            )
        )
    export = activation_export.raw_response(body.modelId, body.hookPoint, answer)
    if body.format == "json":
        return export
    name = f"{body.modelId}-{body.hookPoint}-{'_'.join(map(str, export.layers))}.npy"
    return Response(
        activation_export.npy_bytes(export),
        media_type=NPY,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/activation/attention")
async def activation_attention(
    body: ActivationAttentionRequest, settings: SettingsDep, upstreams: UpstreamsDep
) -> ActivationAttentionResponse:
    """One layer/head's attention pattern over a text, sparsified as Neuronpedia's."""
    check_texts(settings, body.prompt)
    client = upstreams.inference(body.modelId)
    async with upstream_errors(client):
        answer = await client.activation_attention(
            inference.ActivationAttentionRequest(
                prompt=body.prompt, model=body.modelId, layer=body.layer, head=body.head
            )
        )
    return ActivationAttentionResponse(
        tokens=answer.tokens,
        seqLen=answer.seq_len,
        attentionIndices=answer.attention_indices,
        attentionValues=answer.attention_values,
        maxActivation=answer.max_activation,
    )
