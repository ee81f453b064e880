"""Reading `activation/upload-batch` bodies as they arrive (ijson), row by row.

The body is Neuronpedia's `{"modelId", "source", "index", "activations": [{"tokens",
"values"}, ...]}`. Parsing it whole would hold the raw bytes and the parsed rows at once
(a 100k-row upload is hundreds of MB); here each chunk is pushed into ijson's C parser as
it arrives, which hands back the activations completed so far, so only one chunk's rows
are held at a time. The header fields are read from the same chunks by a second parser
that stops at `activations`, so they must come first (the `neuronpedia` client sends
them so): the caller checks who may upload before any row is stored.
"""

from array import array
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import ijson

from interpedia_core.errors import InvalidInput
from interpedia_webapi.uploads import UploadedActivation

HEADER = ("modelId", "source", "index")


@dataclass
class ActivationUpload:
    model_id: str
    source_id: str
    index: int | str
    activations: AsyncIterator[UploadedActivation]


class _Parsers:
    """Both parsers fed from one stream of chunks, with the body's size limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.rows: list[Any] = ijson.sendable_list()
        self._rows = ijson.items_coro(self.rows, "activations.item", use_float=True)
        self.events: list[tuple[str, str, Any]] | None = ijson.sendable_list()
        self._header = ijson.parse_coro(self.events)

    def send(self, chunk: bytes) -> None:
        if not chunk:  # an empty chunk would tell the parsers the body has ended
            return
        self.size += len(chunk)
        if self.size > self.limit:
            raise InvalidInput(f"an upload's body has at most {self.limit:,} bytes")
        try:
            self._rows.send(chunk)
            if self.events is not None:
                self._header.send(chunk)
        except ijson.JSONError as exc:
            raise InvalidInput(f"the body is not valid JSON ({exc})") from None

    def close(self) -> None:
        try:
            self._rows.close()
        except ijson.JSONError as exc:
            raise InvalidInput(f"the body is not valid JSON ({exc})") from None

    def header(self) -> dict[str, Any] | None:
        """The header fields once `activations` (or the body's end) is reached, else None."""
        assert self.events is not None
        found: dict[str, Any] = {}
        for prefix, event, value in self.events:
            if prefix == "" and event not in ("start_map", "map_key", "end_map"):
                raise InvalidInput("the body is a JSON object")
            if prefix in HEADER and event in ("string", "number"):
                found[prefix] = value
            elif (prefix, event) in (("activations", "start_array"), ("", "end_map")):
                self.events = None  # the header parser's work is done
                return found
        return None


def _activation(item: Any, n: int) -> UploadedActivation:
    where = f"activations[{n}]"
    if not isinstance(item, dict):
        raise InvalidInput(f"{where}: an activation is an object with tokens and values")
    tokens, values = item.get("tokens"), item.get("values")
    if not isinstance(tokens, list):  # its items are checked as the row is stored
        raise InvalidInput(f"{where}: tokens is a list of strings")
    if not isinstance(values, list):
        raise InvalidInput(f"{where}: values is a list of numbers")
    # Converted in C (this runs for every value of every row); like the pydantic-parsed
    # feature upload, JSON true and false read as 1 and 0.
    try:
        numbers = array("d", values).tolist()
    except TypeError:
        raise InvalidInput(f"{where}: values is a list of numbers") from None
    return UploadedActivation(tokens=tokens, values=numbers)


async def read_activation_upload(chunks: AsyncIterator[bytes], limit: int) -> ActivationUpload:
    """The header now; the activations as an iterator that reads the rest of the body."""
    parsers = _Parsers(limit)
    header: dict[str, Any] | None = None
    ended = True
    async for chunk in chunks:
        parsers.send(chunk)
        header = parsers.header()
        if header is not None:
            ended = False
            break
    if header is None:
        parsers.close()  # a truncated body says so
        raise InvalidInput("the body is an object with modelId, source, index and activations")
    missing = [name for name in HEADER if name not in header]
    if missing:
        raise InvalidInput(
            f"{', '.join(missing)} missing before activations (send modelId, source and "
            "index first)"
        )
    if not isinstance(header["modelId"], str) or not isinstance(header["source"], str):
        raise InvalidInput("modelId and source are strings")
    if any("\x00" in str(header[name]) for name in HEADER):
        raise InvalidInput("modelId, source and index may not contain NUL characters")

    async def activations() -> AsyncIterator[UploadedActivation]:
        n = 0

        def drain() -> list[UploadedActivation]:
            nonlocal n
            done = [_activation(item, n + k) for k, item in enumerate(parsers.rows)]
            n += len(done)
            parsers.rows.clear()
            return done

        for row in drain():
            yield row
        if not ended:
            async for chunk in chunks:
                parsers.send(chunk)
                for row in drain():
                    yield row
        parsers.close()
        for row in drain():
            yield row

    return ActivationUpload(
        model_id=header["modelId"],
        source_id=header["source"],
        index=header["index"] if isinstance(header["index"], str) else int(header["index"]),
        activations=activations(),
    )
