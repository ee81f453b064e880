"""`json_array_stream` sends one JSON array an item at a time, and closes its source when
the reader goes away (so the export behind it stops reading the database)."""

import json
from collections.abc import AsyncGenerator
from typing import Any

from interpedia_core.sse import json_array_stream


async def _body(response: Any) -> str:
    return "".join([chunk async for chunk in response.body_iterator])


async def test_items_make_one_array_and_nothing_makes_an_empty_one() -> None:
    async def items() -> AsyncGenerator[dict[str, Any], None]:
        for i in range(3):
            yield {"index": str(i), "values": [i, 0.5]}

    async def none() -> AsyncGenerator[dict[str, Any], None]:
        return
        yield {}

    response = json_array_stream(items())
    assert response.media_type == "application/json"
    assert json.loads(await _body(response)) == [
        {"index": "0", "values": [0, 0.5]},
        {"index": "1", "values": [1, 0.5]},
        {"index": "2", "values": [2, 0.5]},
    ]
    assert json.loads(await _body(json_array_stream(none()))) == []


async def test_a_reader_that_leaves_closes_the_items() -> None:
    closed = []

    async def items() -> AsyncGenerator[dict[str, Any], None]:
        try:
            for i in range(1000):
                yield {"i": i}
        finally:
            closed.append(True)

    chunks = json_array_stream(items()).body_iterator
    assert await anext(chunks) == '[{"i":0}'
    await chunks.aclose()
    assert closed == [True]
