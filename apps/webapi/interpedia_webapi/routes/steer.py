"""Steering, default and steered side by side; cached by input; streamed as SSE on request."""

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from interpedia_core.errors import InterpediaError, InvalidInput, NotFound
from interpedia_core.service import event_stream
from interpedia_webapi import steering
from interpedia_webapi.deps import SessionDep, SettingsDep, UpstreamsDep
from interpedia_webapi.routes import check_texts, upstream_router
from interpedia_webapi.schemas import SteerChatRequest, SteerRequest, SteerResponse, parse_index
from interpedia_webapi.settings import WebapiSettings
from interpedia_webapi.upstream import as_dict, call

router = upstream_router("steering", NotFound)
STEER_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "model": SteerResponse,
        "description": "The default and steered texts; with `stream: true`, server-sent events "
        "with the texts so far, the last one with `done: true` (or `error`).",
        "content": event_stream({"type": "object"}),
    }
}


def _features(body: SteerRequest | SteerChatRequest) -> list[dict[str, Any]]:
    return [
        {
            "model": f.modelId,
            "source": f.layer,
            "index": parse_index(f.index),
            "strength": f.strength,
        }
        for f in body.features
    ]


def _limits(settings: WebapiSettings, n_tokens: int) -> None:
    if n_tokens > settings.steer_max_tokens:
        raise InvalidInput(f"n_tokens may be at most {settings.steer_max_tokens}")


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data)}\n\n"


async def _run(
    kind: str,
    method: str,
    request: dict[str, Any],
    stream: bool,
    session: SessionDep,
    upstreams: UpstreamsDep,
    model_id: str,
    http_request: Request,
) -> SteerResponse | StreamingResponse:
    key = steering.cache_key(kind, request)
    hit = await steering.cached(session, key)
    client = upstreams.inference(model_id)
    if not stream:
        if hit is None:
            answer = await call(client, method, request | {"stream": False})
            hit = steering.outputs_by_type(answer)
            await steering.store(session, key, request, hit)
            await session.commit()
            return SteerResponse(id=key, cached=False, **hit)
        return SteerResponse(id=key, cached=True, **hit)

    async def events() -> AsyncIterator[str]:
        if hit is not None:
            yield _sse({**hit, "done": True, "id": key, "cached": True})
            return
        latest: dict[str, str] = {}
        try:
            streamer = getattr(client, f"{method}_stream", None)
            if streamer is None:  # the client cannot stream: one chunk with everything
                latest = steering.outputs_by_type(await call(client, method, request))
                yield _sse(latest)
            else:
                async for chunk in streamer(request | {"stream": True}):
                    latest |= steering.outputs_by_type(as_dict(chunk))
                    yield _sse(latest)
        except InterpediaError as exc:
            yield _sse({"error": exc.message, "done": True})
            return
        # A fresh session: the request's may be closed once the response has started.
        async with http_request.app.state.sessionmaker.begin() as own:
            await steering.store(own, key, request, latest)
        yield _sse({**latest, "done": True, "id": key, "cached": False})

    return StreamingResponse(events(), media_type="text/event-stream")


@router.post("/steer", response_model=None, responses=STEER_ANSWERS)
async def steer(
    body: SteerRequest,
    session: SessionDep,
    settings: SettingsDep,
    upstreams: UpstreamsDep,
    http_request: Request,
) -> SteerResponse | StreamingResponse:
    """Complete `prompt` with and without the features added; `stream: true` answers SSE."""
    check_texts(settings, body.prompt)
    _limits(settings, body.n_tokens)
    request = {
        "prompt": body.prompt,
        "model": body.modelId,
        "types": ["STEERED", "DEFAULT"],
        "features": _features(body),
        "n_completion_tokens": body.n_tokens,
        "temperature": body.temperature,
        "strength_multiplier": body.strength_multiplier,
        "freq_penalty": body.freq_penalty,
        "seed": body.seed,
        "steer_method": body.steer_method,
        "normalize_steering": body.normalize_steering,
    }
    return await _run(
        "completion",
        "steer_completion",
        request,
        body.stream,
        session,
        upstreams,
        body.modelId,
        http_request,
    )


@router.post("/steer-chat", response_model=None, responses=STEER_ANSWERS)
async def steer_chat(
    body: SteerChatRequest,
    session: SessionDep,
    settings: SettingsDep,
    upstreams: UpstreamsDep,
    http_request: Request,
) -> SteerResponse | StreamingResponse:
    """Chat completion with and without steering (the default and steered conversations)."""
    check_texts(settings, [m.content for m in body.steeredChatMessages])
    _limits(settings, body.n_tokens)
    request = {
        "prompt": [m.model_dump() for m in body.steeredChatMessages],
        "default_prompt": [m.model_dump() for m in body.defaultChatMessages],
        "model": body.modelId,
        "types": ["STEERED", "DEFAULT"],
        "features": _features(body),
        "n_completion_tokens": body.n_tokens,
        "temperature": body.temperature,
        "strength_multiplier": body.strength_multiplier,
        "freq_penalty": body.freq_penalty,
        "seed": body.seed,
        "steer_special_tokens": body.steer_special_tokens,
    }
    return await _run(
        "chat",
        "steer_completion_chat",
        request,
        body.stream,
        session,
        upstreams,
        body.modelId,
        http_request,
    )
