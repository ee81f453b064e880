"""Steering through the inference service, with results cached by normalised input.

Generation is slow and, with a seed, deterministic, so the same request answers
from `steer_cache` the second time. The key is a SHA-256 of the inference request
with keys sorted, so field order does not matter.
"""

import hashlib
import json
from typing import Any

from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_clients.inference import models as inference
from interpedia_db.models import SteerCache

SteerAnswer = inference.SteerCompletionResponse | inference.SteerCompletionChatResponse


def request_json(request: BaseModel) -> dict[str, Any]:
    """The request as stored and hashed: what changes the answer (not how it is delivered)."""
    return request.model_dump(mode="json", exclude={"stream"}, exclude_unset=True)


def cache_key(kind: str, request: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"kind": kind, "request": request}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def cached(session: AsyncSession, key: str) -> dict[str, Any] | None:
    row = await session.get(SteerCache, key)
    return None if row is None else row.response


async def store(
    session: AsyncSession, key: str, request: dict[str, Any], response: dict[str, Any]
) -> None:
    await session.execute(
        pg_insert(SteerCache)
        .values(key=key, request=request, response=response)
        .on_conflict_do_nothing()
    )


def outputs_by_type(answer: SteerAnswer) -> dict[str, Any]:
    """{"STEERED": text, "DEFAULT": text} from an inference answer (or one streamed event),
    with "logprobs" by type when the service sent them."""
    result: dict[str, Any] = {}
    logprobs: dict[str, list[dict[str, Any]]] = {}
    for output in answer.outputs:
        text = output.output if isinstance(output, inference.SteerCompletionOutput) else output.raw
        kind = str(output.type.value if output.type else "").upper()
        result[kind] = text
        if output.logprobs:
            logprobs[kind] = [entry.model_dump(mode="json") for entry in output.logprobs]
    if logprobs:
        result["logprobs"] = logprobs
    return result
