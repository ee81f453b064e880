"""Steering through the inference service, with results cached by normalised input.

Generation is slow and, with a seed, deterministic, so the same request answers
from `steer_cache` the second time. The key is a SHA-256 of the inference request
with keys sorted, so field order does not matter. The key is also the run's share id
(Neuronpedia's steer output id): `/api/steer-load` and `/steer/{id}` reopen the run.

A feature to steer with is an SAE's (the inference service reads its decoder row) or a
custom vector's (its stored values go to the service as a raw vector). The service takes
one kind per request, so a mix sends the SAE features' decoder rows as vectors too.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_clients.inference import AsyncInferenceClient
from interpedia_clients.inference import models as inference
from interpedia_core.errors import NotFound
from interpedia_db.models import SteerCache, User
from interpedia_webapi import vectors

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
    session: AsyncSession,
    key: str,
    request: dict[str, Any],
    response: dict[str, Any],
    asked: dict[str, Any],
    creator_id: int | None,
) -> None:
    """Keep a finished run; the first to run a request is its creator (later, identical
    runs are answered from this row and share its id)."""
    await session.execute(
        pg_insert(SteerCache)
        .values(key=key, request=request, response=response, asked=asked, creator_id=creator_id)
        .on_conflict_do_nothing()
    )


async def saved_run(session: AsyncSession, run_id: str) -> SteerCache:
    """A steering run by its share id (the `id` a steer answered)."""
    row = await session.get(SteerCache, run_id) if len(run_id) <= 64 else None
    if row is None:
        raise NotFound(f"no saved steering run {run_id}")
    return row


def run_kind(run: SteerCache) -> str:
    """ "chat" or "completion": a chat run's inference prompt is a list of messages."""
    return "chat" if isinstance(run.request.get("prompt"), list) else "completion"


async def runs_of(
    session: AsyncSession, user: User, model_id: str | None = None, limit: int = 100
) -> list[SteerCache]:
    """The runs `user` made, newest first (of one model when given)."""
    query = select(SteerCache).where(SteerCache.creator_id == user.id)
    if model_id is not None:
        query = query.where(SteerCache.request["model"].astext == model_id)
    rows = await session.execute(query.order_by(SteerCache.created_at.desc()).limit(limit))
    return list(rows.scalars())


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


@dataclass(frozen=True)
class SteerBy:
    """A feature to steer with, addressed as Neuronpedia does (model, source, index)."""

    model_id: str
    source_id: str
    index: int
    strength: float


async def steer_targets(
    session: AsyncSession, client: AsyncInferenceClient, wanted: list[SteerBy]
) -> dict[str, list[inference.SteerFeature] | list[inference.SteerVector]]:
    """The inference request's `features` or `vectors` for `wanted` (see the module's note)."""
    stored = await vectors.steering_vectors(
        session, [(w.model_id, w.source_id, w.index) for w in wanted]
    )
    if not stored:
        return {
            "features": [
                inference.SteerFeature(
                    model=w.model_id, source=w.source_id, index=w.index, strength=w.strength
                )
                for w in wanted
            ]
        }
    raw: list[inference.SteerVector] = []
    for w in wanted:
        vector = stored.get((w.model_id, w.source_id, w.index))
        if vector is not None:
            hook, values = vector.hook_name or "", list(vector.vector or [])
        else:
            row = await client.util_sae_vector(
                inference.UtilSaeVectorRequest(model=w.model_id, source=w.source_id, index=w.index)
            )
            hook, values = row.hookName, row.vector
        raw.append(inference.SteerVector(hook=hook, steering_vector=values, strength=w.strength))
    return {"vectors": raw}
