"""Bulk loads with COPY: the one way rows are streamed into a table in bulk.

Activations arrive by the hundred thousand from two places, the dashboards a trainer
computes and the exports an admin imports; both write them through `copy_activations`
(one row shape, `ActivationRow`, one column list), and any other bulk table through
`copy_rows`. Rows are encoded as PostgreSQL's COPY text format here:
asyncpg's binary COPY encodes arrays element by element with abstract-class checks,
which made it the import's largest cost (activations are arrays of ~64-128 tokens
and values). Building text lines with `str.join` is several times cheaper, and the
server parses them in its own process, so the work spreads over two cores.

Format (https://www.postgresql.org/docs/current/sql-copy.html, "Text Format"):
columns separated by tabs, `\\N` for NULL, backslash escapes for backslash, tab,
newline and carriage return. Arrays are written as array literals (`{"a","b"}`,
elements quoted with `\\` and `"` escaped), then escaped like any other text.
"""

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core import stopping
from interpedia_db.connect import driver_connection

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
# Array-literal escaping (\ and ") followed by COPY escaping, in one pass.
_ARRAY_COPY_ESCAPES = str.maketrans(
    {"\\": "\\\\\\\\", '"': '\\\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r"}
)
_SEP = "\x01"  # joins elements before escaping; replaced by "," between quotes after
CHUNK_BYTES = 1 << 18


def _text_array(values: list[str]) -> str:
    joined = _SEP.join(values)
    if joined.count(_SEP) != len(values) - 1:  # a value holds the separator itself
        inner = '","'.join(v.translate(_ARRAY_COPY_ESCAPES) for v in values)
    else:
        inner = joined.translate(_ARRAY_COPY_ESCAPES).replace(_SEP, '","')
    return '{"' + inner + '"}'


def field(value: Any) -> str:
    """One column's text (already COPY-escaped)."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, list):
        if not value:
            return "{}"
        if isinstance(value[0], str):
            return _text_array(value)
        # repr: the shortest exact form of a float (ints print as ints).
        return "{" + ",".join(map(repr, value)) + "}"
    raise TypeError(f"cannot COPY a {type(value).__name__}")


def line(row: Iterable[Any]) -> str:
    return "\t".join(map(field, row)) + "\n"


class _Chunker:
    """Gathers COPY lines into chunks of about `size` bytes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.buffer: list[str] = []
        self.length = 0

    def add(self, row: tuple) -> bytes | None:
        """The chunk that `row` completes, if it completes one."""
        text = line(row)
        self.buffer.append(text)
        self.length += len(text)
        if self.length < self.size:
            return None
        return self.rest()

    def rest(self) -> bytes | None:
        chunk = "".join(self.buffer).encode() if self.buffer else None
        self.buffer, self.length = [], 0
        return chunk


def chunks(rows: Iterator[tuple], size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """COPY input in chunks of about `size` bytes."""
    chunker = _Chunker(size)
    for row in rows:
        if (chunk := chunker.add(row)) is not None:
            yield chunk
    if (chunk := chunker.rest()) is not None:
        yield chunk


async def async_chunks(rows: Iterator[tuple] | AsyncIterator[tuple]) -> AsyncIterator[bytes]:
    """`chunks` for asyncpg's COPY; a stop request ends the COPY between chunks.

    Rows may arrive over time (an upload being read): each chunk is sent as soon as it is
    full, so the server stores one while the next is still being read. `Stopped` raised
    here, or any error raised by `rows`, aborts the COPY, and its transaction rolls back.
    """
    if not isinstance(rows, AsyncIterator):
        for chunk in chunks(rows):
            stopping.check()
            yield chunk
        return
    chunker = _Chunker(CHUNK_BYTES)
    async for row in rows:
        if (chunk := chunker.add(row)) is not None:
            stopping.check()
            yield chunk
    if (chunk := chunker.rest()) is not None:
        yield chunk


class ActivationRow(NamedTuple):
    """One row of `activations`, in the order COPY sends the columns."""

    model_id: str
    source_id: str
    index: int
    tokens: list[str]
    values: list[float]
    max_value: float
    max_value_token_index: int
    min_value: float | None
    bin_min: float | None
    bin_max: float | None
    bin_contains: float | None
    data_index: int | None
    data_source: str | None
    external_id: str | None = None  # an import's dedup key; None for computed dashboards


ACTIVATION_COLUMNS: tuple[str, ...] = ActivationRow._fields


async def copy_rows(
    session: AsyncSession,
    table: str,
    columns: Sequence[str],
    rows: Iterable[tuple] | AsyncIterator[tuple],
) -> None:
    """COPY `rows` into `table` inside the session's transaction, streamed in chunks."""
    driver = await driver_connection(session)
    source = rows if isinstance(rows, AsyncIterator) else iter(rows)
    await driver.copy_to_table(
        table, source=async_chunks(source), columns=list(columns), format="text"
    )


async def copy_activations(
    session: AsyncSession,
    rows: Iterable[ActivationRow] | AsyncIterator[ActivationRow],
    table: str = "activations",
) -> None:
    """COPY activation rows into `activations` (or a temp table of the same columns)."""
    await copy_rows(session, table, ACTIVATION_COLUMNS, rows)
