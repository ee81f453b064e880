"""Steering through the inference service, with results cached by normalised input.

Generation is slow and, with a seed, deterministic, so the same request answers
from `steer_cache` the second time. The key is a SHA-256 of the request with
keys sorted, so field order does not matter.
"""

import hashlib
import json
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_db.models import SteerCache


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


def outputs_by_type(answer: dict[str, Any]) -> dict[str, str]:
    """{"STEERED": text, "DEFAULT": text} from the inference answer's `outputs` list."""
    result: dict[str, str] = {}
    for output in answer.get("outputs", []):
        kind = str(output.get("type", "")).upper()
        result[kind] = output.get("output") or output.get("raw") or ""
    return result
