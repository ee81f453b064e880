"""POST /v1/steer/completion and /v1/steer/completion-chat (JSON or server-sent events)."""

from collections.abc import AsyncGenerator, Callable
from typing import Any

import torch
from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from interpedia_core.sse import MEDIA_TYPE, event_stream
from interpedia_inference import completions
from interpedia_inference.deps import EngineDep
from interpedia_inference.engine import Engine
from interpedia_inference.schemas.steer import (
    SteerCompletionChatRequest,
    SteerCompletionChatResponse,
    SteerCompletionRequest,
    SteerCompletionResponse,
)

router = APIRouter(prefix="/steer", tags=["steer"])


def _sse_doc(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": (
                "JSON, or with `stream: true` server-sent events: one `data: <json>` message "
                f"per generated token, each a full {model.__name__} with the text so far."
            ),
            "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
        }
    }


async def _respond(
    events: AsyncGenerator[Any, None], build: Callable[..., BaseModel], stream: bool
) -> BaseModel | StreamingResponse:
    if not stream:
        last: Any = None
        async for item in events:
            last = item
        return build(*last)
    # Start the generation before answering so bad input still gets a JSON error status.
    first = await anext(events, None)

    async def answers() -> AsyncGenerator[BaseModel, None]:
        try:
            if first is not None:
                yield build(*first)
            async for item in events:
                yield build(*item)
        finally:
            await events.aclose()

    return event_stream(answers())


@router.post(
    "/completion",
    response_model=SteerCompletionResponse,
    response_model_exclude_none=True,
    responses=_sse_doc(SteerCompletionResponse),
)
async def steer_completion(body: SteerCompletionRequest, engine: EngineDep) -> Any:
    """Complete a prompt with and/or without steering (STEERED and DEFAULT in one batch)."""
    engine.check_model(body.model)
    engine.check_completion_tokens(body.n_completion_tokens)
    types = completions.dedupe_types(body.types)
    targets = await completions.resolve_targets(engine, body)
    prompt_ids = engine.tokenize(body.prompt)
    events = completions.completion_events(engine, prompt_ids, body, targets, types)

    def build(tokens: list[list[int]], logprobs: list[list[dict]]) -> SteerCompletionResponse:
        return completions.completion_response(
            engine, prompt_ids, types, tokens, logprobs, body.n_logprobs
        )

    return await _respond(events, build, bool(body.stream))


@router.post(
    "/completion-chat",
    response_model=SteerCompletionChatResponse,
    response_model_exclude_none=True,
    responses=_sse_doc(SteerCompletionChatResponse),
)
async def steer_completion_chat(body: SteerCompletionChatRequest, engine: EngineDep) -> Any:
    """Chat completion through the model's chat template, with and/or without steering."""
    engine.check_model(body.model)
    engine.check_completion_tokens(body.n_completion_tokens)
    types = completions.dedupe_types(body.types)
    targets = await completions.resolve_targets(engine, body)
    prompt_text, prompt_ids = completions.chat_prompt(engine, body.prompt)
    positions = None if body.steer_special_tokens else _content_positions(engine, prompt_ids)
    events = completions.completion_events(engine, prompt_ids, body, targets, types, positions)

    def build(tokens: list[list[int]], logprobs: list[list[dict]]) -> SteerCompletionChatResponse:
        return completions.chat_response(
            engine, body.prompt, prompt_text, prompt_ids, types, tokens, logprobs, body.n_logprobs
        )

    return await _respond(events, build, bool(body.stream))


def _content_positions(engine: Engine, ids: list[int]) -> torch.Tensor:
    """[seq] bool: prompt positions that are not special tokens (the ones steered)."""
    return torch.tensor([not s for s in engine.is_special(ids)])
