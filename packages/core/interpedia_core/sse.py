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
