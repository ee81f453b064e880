"""The graph service is internal (strangers refused when it has a secret), and its ids are
bounded by their columns."""

import httpx

from interpedia_graph.app import create_app
from interpedia_graph.settings import GraphSettings
from interpedia_testing.asgi import app_client


async def test_with_a_secret_requests_without_it_are_refused() -> None:
    app = create_app(GraphSettings(secret="graph-secret"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for headers in ({}, {"x-secret-key": "wrong"}):
            refused = await client.post("/v1/graphs", json={}, headers=headers)
            assert refused.status_code == 401, refused.text
            assert "X-SECRET-KEY" in refused.json()["detail"]
        assert (await client.get("/health")).status_code == 503  # open, though still loading
    assert "401" in app.openapi()["paths"]["/v1/graphs"]["post"]["responses"]


async def test_ids_beyond_their_columns_are_refused_not_500(database_url: str) -> None:
    app = create_app(GraphSettings(database_url=database_url))
    async with app_client(app) as client:
        for method, path in (
            ("GET", "/v1/jobs/9223372036854775808"),
            ("DELETE", "/v1/jobs/0"),
            ("GET", "/v1/graphs?user_id=2147483648"),
        ):
            response = await client.request(method, path)
            assert response.status_code == 422, (path, response.text)
