"""Reading `activation/upload-batch` bodies as they arrive (ijson), row by row.

The body is Neuronpedia's `{"modelId", "source", "index", "activations": [{"tokens",
"values"}, ...]}`. Parsing it whole would hold the raw bytes and the parsed rows at once
(a 100k-row upload is hundreds of MB); here the header fields are read first, then each
activation is built and handed on while the next bytes are still on the wire. So the
header fields must come before `activations` (the `neuronpedia` client sends them so).
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import ijson

from interpedia_core.errors import InvalidInput
from interpedia_webapi.uploads import UploadedActivation

HEADER = ("modelId", "source", "index")
OPENING = ("start_map", "start_array", "map_key")  # events inside an item, not its end


class _Body:
    """A file-like view of the request's chunks for ijson, refusing more than `limit` bytes."""

    def __init__(self, chunks: AsyncIterator[bytes], limit: int) -> None:
        self._chunks = chunks
        self._limit = limit
        self.size = 0

    async def read(self, n: int = -1) -> bytes:
        if n == 0:  # ijson asks for nothing to learn whether the stream is bytes
            return b""
        async for chunk in self._chunks:
            self.size += len(chunk)
            if self.size > self._limit:
                raise InvalidInput(f"an upload's body has at most {self._limit:,} bytes")
            if chunk:
                return chunk
        return b""


@dataclass
class ActivationUpload:
    model_id: str
    source_id: str
    index: int | str
    activations: AsyncIterator[UploadedActivation]


async def _events(body: _Body) -> AsyncIterator[tuple[str, str, Any]]:
    try:
        async for event in ijson.parse_async(body, use_float=True):
            yield event
    except ijson.JSONError as exc:
        raise InvalidInput(f"the body is not valid JSON ({exc})") from None


def _activation(item: Any, n: int) -> UploadedActivation:
    where = f"activations[{n}]"
    if not isinstance(item, dict):
        raise InvalidInput(f"{where}: an activation is an object with tokens and values")
    tokens, values = item.get("tokens"), item.get("values")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise InvalidInput(f"{where}: tokens is a list of strings")
    if not isinstance(values, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise InvalidInput(f"{where}: values is a list of numbers")
    return UploadedActivation(tokens=tokens, values=values)


async def read_activation_upload(chunks: AsyncIterator[bytes], limit: int) -> ActivationUpload:
    """The header now; the activations as an iterator that reads the rest of the body."""
    events = _events(_Body(chunks, limit))
    header: dict[str, Any] = {}
    async for prefix, event, value in events:
        if prefix == "" and event not in ("start_map", "map_key", "end_map"):
            raise InvalidInput("the body is a JSON object")
        if prefix in HEADER and event in ("string", "number"):
            header[prefix] = value
        elif (prefix, event) in (("activations", "start_array"), ("", "end_map")):
            break
    missing = [name for name in HEADER if name not in header]
    if missing:
        raise InvalidInput(
            f"{', '.join(missing)} missing before activations (send modelId, source and "
            "index first)"
        )
    if not isinstance(header["modelId"], str) or not isinstance(header["source"], str):
        raise InvalidInput("modelId and source are strings")

    async def activations() -> AsyncIterator[UploadedActivation]:
        builder: ijson.ObjectBuilder | None = None
        n = 0
        async for prefix, event, value in events:
            if builder is None:
                if prefix == "activations" and event == "end_array":
                    break
                builder = ijson.ObjectBuilder()
            builder.event(event, value)
            if prefix == "activations.item" and event not in OPENING:
                yield _activation(builder.value, n)
                builder, n = None, n + 1
        async for _ in events:  # the rest must still be well-formed JSON
            pass

    return ActivationUpload(
        model_id=header["modelId"],
        source_id=header["source"],
        index=header["index"] if isinstance(header["index"], str) else int(header["index"]),
        activations=activations(),
    )
