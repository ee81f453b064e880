"""The transport under every generated client: httpx, the secret header, errors, SSE.

A non-2xx answer raises `ServiceError` carrying the status and the service's
`detail`, so a caller can pass a 4xx on to its own user and turn anything else
into a 502. Answers and stream events are validated into the generated models,
so callers never handle raw dicts.
"""

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

T = TypeVar("T")


class ServiceError(Exception):
    """A service answered with an error status."""

    def __init__(self, status_code: int, detail: str, service: str) -> None:
        super().__init__(f"{service} answered {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.service = service


def _body(body: BaseModel | dict[str, Any] | None) -> Any:
    if isinstance(body, BaseModel):
        return body.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return body


def _stream_body(body: BaseModel | dict[str, Any] | None) -> Any:
    """The body of a streamed call: a request that has a `stream` flag asks for the stream."""
    payload = _body(body)
    if isinstance(body, BaseModel) and "stream" in type(body).model_fields:
        payload["stream"] = True
    return payload


def _headers(secret: str | None, headers: dict[str, str] | None) -> dict[str, str]:
    """The caller's headers, plus the service's secret when there is one."""
    return {
        # Our models are snake_case; say so, whatever dialect the service defaults to.
        "X-Wire-Dialect": "snake",
        **(headers or {}),
        **({"X-SECRET-KEY": secret} if secret else {}),
    }


def _raise_for_status(response: httpx.Response, service: str) -> None:
    if response.is_success:
        return
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text
    raise ServiceError(response.status_code, str(detail), service)


def _parse(response: httpx.Response, response_type: Any) -> Any:
    return _validate(response.json(), response_type)


def _validate(data: Any, response_type: Any) -> Any:
    if response_type is None:
        return data
    return TypeAdapter(response_type).validate_python(data)


def _sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse `data:` lines of a server-sent event stream into JSON objects."""
    data: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line.strip() and data:
            payload = "\n".join(data)
            data = []
            if payload and payload != "[DONE]":
                yield json.loads(payload)
    if data and "\n".join(data) not in ("", "[DONE]"):
        yield json.loads("\n".join(data))


def _ndjson_frames(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Each non-blank line of an NDJSON stream as a JSON object."""
    return (json.loads(line) for line in lines if line.strip())


class ServiceClient:
    """Synchronous client base; generated subclasses add one method per operation."""

    service = "service"

    def __init__(
        self,
        base_url: str,
        *,
        secret: str | None = None,
        timeout: float | httpx.Timeout = 120.0,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers=_headers(secret, headers),
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        response_type: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        response = self._http.request(method, path, json=_body(body), params=_clean(params))
        _raise_for_status(response, self.service)
        return _parse(response, response_type)

    def _stream(
        self,
        method: str,
        path: str,
        body: Any = None,
        response_type: Any = None,
        *,
        ndjson: bool = False,
    ) -> Iterator[Any]:
        """Server-sent events, or with `ndjson` one JSON frame a line (the lens)."""
        with self._http.stream(method, path, json=_stream_body(body)) as response:
            if not response.is_success:
                response.read()
                _raise_for_status(response, self.service)
            frames = _ndjson_frames if ndjson else _sse_events
            for event in frames(response.iter_lines()):
                yield _validate(event, response_type)


class AsyncServiceClient:
    """Asynchronous client base; generated subclasses add one method per operation."""

    service = "service"

    def __init__(
        self,
        base_url: str,
        *,
        secret: str | None = None,
        timeout: float | httpx.Timeout = 120.0,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=_headers(secret, headers),
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self: T) -> T:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        response_type: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        response = await self._http.request(method, path, json=_body(body), params=_clean(params))
        _raise_for_status(response, self.service)
        return _parse(response, response_type)

    async def _stream(
        self,
        method: str,
        path: str,
        body: Any = None,
        response_type: Any = None,
        *,
        ndjson: bool = False,
    ) -> AsyncIterator[Any]:
        """Each event as soon as its blank line arrives (not when the stream ends); with
        `ndjson` each frame as soon as its line has."""
        async with self._http.stream(method, path, json=_stream_body(body)) as response:
            if not response.is_success:
                await response.aread()
                _raise_for_status(response, self.service)
            frames = _ndjson_frames if ndjson else _sse_events
            buffer: list[str] = []
            async for line in response.aiter_lines():
                buffer.append(line)
                if ndjson or not line.strip():  # a frame's line, or an event's blank line
                    for event in frames(iter(buffer)):
                        yield _validate(event, response_type)
                    buffer = []
            for event in frames(iter(buffer)):
                yield _validate(event, response_type)


def _clean(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}
