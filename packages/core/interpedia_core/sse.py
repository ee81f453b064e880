"""Streamed answers, framed the same way by every service: server-sent events, and NDJSON
where Neuronpedia's own route streams that (the lens).

Each event is one `data: <json>` message; each NDJSON frame one JSON object a line.
`event_stream` and `ndjson_stream` answer with the headers that keep proxies from holding
messages back (`X-Accel-Buffering: no`, no caching), so each message reaches the reader when
it is yielded, not when the stream ends. The reading side is `interpedia_clients.base`
(Python) and `Interpedia.stream` (the pages' JavaScript).
"""

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse
from pydantic import BaseModel

MEDIA_TYPE = "text/event-stream"
NDJSON = "application/x-ndjson"
COMPONENT_REF = "#/components/schemas/{model}"


def sse_message(data: BaseModel | dict[str, Any]) -> str:
    """One event: a pydantic model (None fields left out) or a JSON-able dict."""
    if isinstance(data, BaseModel):
        payload = data.model_dump_json(exclude_none=True, by_alias=True)
    else:
        payload = json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n"


def event_stream(events: AsyncGenerator[BaseModel | dict[str, Any], None]) -> StreamingResponse:
    """A streaming response sending each of `events` as soon as it is produced.

    `events` is closed when the stream ends or the reader goes away, so work behind it
    (a generation, a poll) stops with the reader.
    """

    async def messages() -> AsyncIterator[str]:
        try:
            async for event in events:
                yield sse_message(event)
        finally:
            await events.aclose()

    return StreamingResponse(messages(), media_type=MEDIA_TYPE, headers=_UNBUFFERED)


_UNBUFFERED = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def json_array_stream(items: AsyncGenerator[dict[str, Any], None]) -> StreamingResponse:
    """One JSON array sent an item at a time, for answers Neuronpedia gives as one array
    but that can be too big to build whole (an admin export of a large source); `items`
    is closed as `event_stream` closes its events."""

    async def chunks() -> AsyncIterator[str]:
        separator = "["
        try:
            async for item in items:
                yield separator + json.dumps(item, separators=(",", ":"))
                separator = ","
        finally:
            await items.aclose()
        yield "[]" if separator == "[" else "]"

    return StreamingResponse(chunks(), media_type="application/json")


def ndjson_stream(frames: AsyncGenerator[BaseModel, None]) -> StreamingResponse:
    """A streaming response sending each of `frames` as one JSON line as soon as it is
    produced (None fields left out); `frames` is closed as `event_stream` closes its events."""

    async def lines() -> AsyncIterator[str]:
        try:
            async for frame in frames:
                yield frame.model_dump_json(exclude_none=True, by_alias=True) + "\n"
        finally:
            await frames.aclose()

    return StreamingResponse(lines(), media_type=NDJSON, headers=_UNBUFFERED)


def event_stream_content(data: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    """The `content` entry of a server-sent event stream whose events carry JSON `data`:
    a model's, or a given JSON schema's.

    `itemSchema` (OpenAPI 3.2, which tools reading 3.1 documents honour) describes one
    event, as a client parses it: `data` is a JSON text matching the schema. A model's
    schema is inlined under its title; `interpedia_core.service` moves it (and the models
    it nests) into the spec's components, so generated clients get a model for the events.
    """
    if isinstance(data, dict):
        data_schema = data
    else:
        data_schema = data.model_json_schema(ref_template=COMPONENT_REF)
    return {
        MEDIA_TYPE: {
            "itemSchema": {
                "type": "object",
                "required": ["data"],
                "properties": {
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": data_schema,
                    },
                    "event": {"type": "string"},
                },
            }
        }
    }


def ndjson_stream_content(*frames: type[BaseModel]) -> dict[str, Any]:
    """The `content` entry of an NDJSON stream whose lines are each one of `frames` (told
    apart by a `kind` literal); `itemSchema` describes one line, as in `event_stream_content`,
    and the models move into the spec's components the same way."""
    return {
        NDJSON: {
            "itemSchema": {
                "anyOf": [frame.model_json_schema(ref_template=COMPONENT_REF) for frame in frames]
            }
        }
    }


def _hoist(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """`schema` as a `$ref` to components, where it and the models it nests move; one
    without a title (not a model's) stays inline."""
    if "$ref" in schema or "title" not in schema:
        return schema
    for name, nested in schema.pop("$defs", {}).items():
        components.setdefault(name, nested)
    components.setdefault(schema["title"], schema)
    return {"$ref": COMPONENT_REF.format(model=schema["title"])}


def hoist_event_schemas(spec: dict[str, Any]) -> None:
    """Move the inlined models of `event_stream_content` and `ndjson_stream_content` into
    `spec`'s components (each replaced by a `$ref`), with the models they nest."""
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            for answer in operation.get("responses", {}).values():
                content = answer.get("content", {})
                item = content.get(MEDIA_TYPE, {}).get("itemSchema", {})
                data = item.get("properties", {}).get("data", {})
                if "contentSchema" in data:
                    data["contentSchema"] = _hoist(data["contentSchema"], components)
                lines = content.get(NDJSON, {}).get("itemSchema", {})
                if "anyOf" in lines:
                    lines["anyOf"] = [_hoist(frame, components) for frame in lines["anyOf"]]
