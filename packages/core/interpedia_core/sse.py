"""Server-sent events, framed the same way by every service.

Each event is one `data: <json>` message. `event_stream` answers with the headers
that keep proxies from holding messages back (`X-Accel-Buffering: no`, no caching),
so each message reaches the reader when it is yielded, not when the stream ends.
The reading side is `interpedia_clients.base` (Python) and `Interpedia.stream`
(the pages' JavaScript).
"""

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse
from pydantic import BaseModel

MEDIA_TYPE = "text/event-stream"
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

    return StreamingResponse(
        messages(),
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


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


def hoist_event_schemas(spec: dict[str, Any]) -> None:
    """Move the inlined event models of `event_stream_content` into `spec`'s components
    (each replaced by a `$ref`), with the models they nest."""
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            for answer in operation.get("responses", {}).values():
                item = answer.get("content", {}).get(MEDIA_TYPE, {}).get("itemSchema", {})
                data = item.get("properties", {}).get("data", {})
                schema = data.get("contentSchema", {})
                if "$ref" in schema or "title" not in schema:
                    continue
                for name, nested in schema.pop("$defs", {}).items():
                    components.setdefault(name, nested)
                components.setdefault(schema["title"], schema)
                data["contentSchema"] = {"$ref": COMPONENT_REF.format(model=schema["title"])}
