"""Steering, default and steered side by side; cached by input; streamed as SSE on request.

A streamed steer passes the inference service's events on as they arrive, one per
generated token, so the page shows the text growing; the first event is awaited before
answering, so a request the service refuses gets its status (400, 404, ...), not an
event stream that only carries an error.
"""

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from interpedia_clients.inference import AsyncInferenceClient
from interpedia_clients.inference import models as inference
from interpedia_core.errors import InterpediaError, InvalidInput, NotFound
from interpedia_core.sse import event_stream, event_stream_content
from interpedia_webapi import steering
from interpedia_webapi.deps import OptionalUser, SessionDep, SettingsDep, UpstreamsDep
from interpedia_webapi.routes import check_texts, upstream_router
from interpedia_webapi.schemas import (
    SteerChatRequest,
    SteerRequest,
    SteerResponse,
    SteerStreamEvent,
    parse_index,
)
from interpedia_webapi.settings import WebapiSettings
from interpedia_webapi.upstream import upstream_errors

router = upstream_router("steering", NotFound)
STEER_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "model": SteerResponse,
        "description": "The default and steered texts; with `stream: true`, server-sent events "
        "with the texts so far, the last one with `done: true` (or `error`).",
        "content": event_stream_content(SteerStreamEvent),
    }
}


async def _common(
    body: SteerRequest | SteerChatRequest, session: SessionDep, client: AsyncInferenceClient
) -> dict[str, Any]:
    """The inference request fields both kinds of steering share."""
    wanted = [
        steering.SteerBy(f.modelId, f.layer, parse_index(f.index), f.strength)
        for f in body.features
    ]
    async with upstream_errors(client, session):
        targets = await steering.steer_targets(session, client, wanted)
    return {
        "model": body.modelId,
        "types": [inference.SteerType.STEERED, inference.SteerType.DEFAULT],
        **targets,
        "n_completion_tokens": body.n_tokens,
        "temperature": body.temperature,
        "strength_multiplier": body.strength_multiplier,
        "freq_penalty": body.freq_penalty,
        "seed": body.seed,
        "steer_method": inference.SteerMethod(body.steer_method),
        "n_logprobs": body.n_logprobs,
    }


def _limits(settings: WebapiSettings, n_tokens: int) -> None:
    if n_tokens > settings.steer_max_tokens:
        raise InvalidInput(f"n_tokens may be at most {settings.steer_max_tokens}")


async def _run(
    kind: str,
    request: inference.SteerCompletionRequest | inference.SteerCompletionChatRequest,
    complete: Callable[[Any], Awaitable[steering.SteerAnswer]],
    stream_completion: Callable[[Any], AsyncIterator[steering.SteerAnswer]],
    client: AsyncInferenceClient,
    body: SteerRequest | SteerChatRequest,
    user: OptionalUser,
    session: SessionDep,
    http_request: Request,
) -> SteerResponse | StreamingResponse:
    stored_request = steering.request_json(request)
    key = steering.cache_key(kind, stored_request)
    saved = {
        "asked": body.model_dump(mode="json", exclude={"stream"}),
        "creator_id": None if user is None else user.id,
    }
    stream = body.stream
    hit = await steering.cached(session, key)
    if not stream:
        if hit is None:
            async with upstream_errors(client, session):
                hit = steering.outputs_by_type(await complete(request))
            await steering.store(session, key, stored_request, hit, **saved)
            await session.commit()
            return SteerResponse(id=key, cached=False, **hit)
        return SteerResponse(id=key, cached=True, **hit)
    if hit is not None:
        return event_stream(_one(SteerStreamEvent(**hit, done=True, id=key, cached=True)))

    answers = aiter(stream_completion(request))
    async with upstream_errors(client, session):
        first = await anext(answers, None)  # refusals become statuses, not events

    async def events() -> AsyncGenerator[SteerStreamEvent, None]:
        latest: dict[str, Any] = {}
        try:
            async with upstream_errors(client):
                if first is not None:
                    latest = steering.outputs_by_type(first)
                    yield SteerStreamEvent(**latest)
                async for answer in answers:
                    latest = steering.outputs_by_type(answer)
                    yield SteerStreamEvent(**latest)
        except InterpediaError as exc:  # the stream has started: say it in the stream
            yield SteerStreamEvent(error=exc.message, done=True)
            return
        finally:
            await answers.aclose()  # type: ignore[attr-defined]
        # A fresh session: the request's may be closed once the response has started.
        async with http_request.app.state.sessionmaker.begin() as own:
            await steering.store(own, key, stored_request, latest, **saved)
        yield SteerStreamEvent(**latest, done=True, id=key, cached=False)

    return event_stream(events())


async def _one(event: SteerStreamEvent) -> AsyncGenerator[SteerStreamEvent, None]:
    yield event


@router.post("/steer", response_model=None, responses=STEER_ANSWERS)
async def steer(
    body: SteerRequest,
    session: SessionDep,
    settings: SettingsDep,
    upstreams: UpstreamsDep,
    user: OptionalUser,
    http_request: Request,
) -> SteerResponse | StreamingResponse:
    """Complete `prompt` with and without the features added; `stream: true` answers SSE."""
    check_texts(settings, body.prompt)
    _limits(settings, body.n_tokens)
    client = upstreams.inference(body.modelId)
    request = inference.SteerCompletionRequest(
        prompt=body.prompt,
        normalize_steering=body.normalize_steering,
        **await _common(body, session, client),
    )
    return await _run(
        "completion",
        request,
        client.steer_completion,
        client.stream_steer_completion,
        client,
        body,
        user,
        session,
        http_request,
    )


@router.post("/steer-chat", response_model=None, responses=STEER_ANSWERS)
async def steer_chat(
    body: SteerChatRequest,
    session: SessionDep,
    settings: SettingsDep,
    upstreams: UpstreamsDep,
    user: OptionalUser,
    http_request: Request,
) -> SteerResponse | StreamingResponse:
    """Chat completion with and without steering (the default and steered conversations)."""
    check_texts(settings, [m.content for m in body.steeredChatMessages])
    _limits(settings, body.n_tokens)
    client = upstreams.inference(body.modelId)
    request = inference.SteerCompletionChatRequest(
        prompt=[inference.ChatMessage(**m.model_dump()) for m in body.steeredChatMessages],
        steer_special_tokens=body.steer_special_tokens,
        **await _common(body, session, client),
    )
    return await _run(
        "chat",
        request,
        client.steer_completion_chat,
        client.stream_steer_completion_chat,
        client,
        body,
        user,
        session,
        http_request,
    )
