"""What a service answers becomes this app's error, faithfully (the generated client over a
mock transport: the only fake upstream in this suite)."""

import httpx
import pytest

from interpedia_clients.inference import AsyncInferenceClient
from interpedia_clients.inference import models as inference
from interpedia_core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    RateLimited,
    Unprocessable,
    UpstreamError,
)
from interpedia_webapi.upstream import upstream_errors


def _client(handler) -> AsyncInferenceClient:
    return AsyncInferenceClient("http://inference.test", transport=httpx.MockTransport(handler))


async def _tokenize(client: AsyncInferenceClient) -> inference.TokenizeResponse:
    async with upstream_errors(client):
        return await client.tokenize(inference.TokenizeRequest(model="m", text="x"))


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, InvalidInput),
        (404, NotFound),
        (409, Conflict),
        (422, Unprocessable),
        (429, RateLimited),
    ],
)
async def test_a_4xx_passes_on_with_its_status_and_message(status: int, error: type) -> None:
    client = _client(lambda request: httpx.Response(status, json={"detail": "its own words"}))
    with pytest.raises(error) as raised:
        await _tokenize(client)
    assert raised.value.status_code == status and raised.value.message == "its own words"


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_secret_is_our_misconfiguration(status: int) -> None:
    client = _client(lambda request: httpx.Response(status, json={"detail": "wrong secret"}))
    with pytest.raises(UpstreamError) as raised:
        await _tokenize(client)
    assert raised.value.status_code == 502
    assert "INTERPEDIA_WEBAPI_INFERENCE_SECRET" in raised.value.message


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_failing_service_is_a_502(status: int) -> None:
    client = _client(lambda request: httpx.Response(status, json={"detail": "loading"}))
    with pytest.raises(UpstreamError) as raised:
        await _tokenize(client)
    assert raised.value.status_code == 502 and f"failed ({status})" in raised.value.message


async def test_an_unreachable_or_nonsensical_service_is_a_502() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(UpstreamError, match="cannot reach the inference service"):
        await _tokenize(_client(refuse))
    with pytest.raises(UpstreamError, match="unexpected shape"):
        await _tokenize(_client(lambda request: httpx.Response(200, json={"tokens": "no"})))
