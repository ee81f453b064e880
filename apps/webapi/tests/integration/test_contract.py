"""What the web API's spec promises, route by route: keys, ids, limits, statuses, streams."""

from typing import Any

import pytest

from interpedia_webapi.app import create_app

MODEL, SOURCE = "webapi-test", "6-res-jb"
SPEC = create_app().openapi()


def _operations(status: str, prefix: str = "/api/") -> list[tuple[str, str]]:
    return [
        (method.upper(), path.replace("{import_id}", "1").replace("{key_id}", "1"))
        for path, methods in SPEC["paths"].items()
        for method, operation in methods.items()
        if path.startswith(prefix) and status in operation["responses"]
    ]


async def _revoked_key(client: Any, admin_key: str) -> str:
    admin = {"x-api-key": admin_key}
    user = (await client.post("/api/admin/users", headers=admin, json={"name": "erin"})).json()
    key = user["apiKey"]
    [info] = (await client.get("/api/me/keys", headers={"x-api-key": key})).json()
    revoked = await client.delete(f"/api/me/keys/{info['id']}", headers={"x-api-key": key})
    assert revoked.status_code == 200
    return key


async def test_every_route_that_reads_a_key_refuses_bad_and_revoked_ones(api, seeded) -> None:
    client, _ = api
    revoked = await _revoked_key(client, seeded["admin"])
    # Sign-in takes a password, not a key (its 401 is a wrong password).
    checked = [op for op in _operations("401") if op[1] != "/api/account/signin"]
    assert len(checked) > 20  # every route with a key, a rate limit or an admin check
    for method, path in checked:
        for key in ("ip_not-a-key", revoked):
            response = await client.request(method, path, headers={"x-api-key": key}, json={})
            assert response.status_code == 401, (method, path, response.text)
            assert "key" in response.json()["detail"]


async def test_admin_routes_refuse_a_normal_users_key(api, seeded) -> None:
    client, _ = api
    admin_routes = _operations("403", prefix="/api/admin/")
    assert len(admin_routes) >= 8
    for method, path in admin_routes:
        response = await client.request(
            method, path, headers={"x-api-key": seeded["alice"]}, json={}
        )
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["detail"] == "this needs an admin API key"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/admin/imports/2147483648", None),
        ("POST", "/api/admin/imports/2147483648/verify", None),
        ("POST", "/api/admin/imports/2147483648/resume", None),
        ("GET", "/api/admin/imports/2147483648/events", None),
        ("GET", "/api/admin/imports/-9223372036854775809", None),
        ("DELETE", "/api/me/keys/2147483648", None),
        ("POST", "/api/explanation/generate", {"modelId": MODEL, "layer": SOURCE, "index": 2**31}),
        ("POST", "/api/explanation/score", {"explanationId": 2**63}),
        # A signature with non-ASCII characters reached hmac.compare_digest: a 500.
        ("PUT", "/api/graph/upload/x?expires=1&signature=%C3%A8%C2%B3", {}),
    ],
)
async def test_ids_beyond_their_columns_are_refused_not_500(api, seeded, method, path, body):
    client, _ = api
    response = await client.request(method, path, headers={"x-api-key": seeded["admin"]}, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"], response.text


@pytest.mark.parametrize("index", ["2147483648", "9999999999", "²", "-1"])
async def test_feature_indices_beyond_int32_or_not_decimal_are_refused(api, index) -> None:
    client, _ = api
    response = await client.get(f"/api/feature/{MODEL}/{SOURCE}/{index}")
    assert response.status_code == 400, response.text
    assert "from 0 to 2147483647" in response.json()["detail"]


async def test_declared_limits_are_the_enforced_ones(api) -> None:
    client, _ = api
    steer = SPEC["components"]["schemas"]["SteerRequest"]["properties"]
    assert steer["n_tokens"]["maximum"] == 256
    body = {"modelId": MODEL, "prompt": "hi", "n_tokens": 257}
    body["features"] = [{"modelId": MODEL, "layer": SOURCE, "index": 1, "strength": 1}]
    too_long = await client.post("/api/steer", json=body)
    assert too_long.status_code == 422 and "n_tokens" in too_long.json()["detail"]
    blank = await client.post(
        "/api/search-all", json={"modelId": MODEL, "sourceSet": "res-jb", "text": "  "}
    )
    assert blank.status_code == 422 and "text" in blank.json()["detail"]


async def test_get_on_a_post_api_route_is_405_with_every_allowed_method(api, seeded) -> None:
    client, _ = api
    listed = await client.get("/api/list/list", headers={"x-api-key": seeded["alice"]})
    assert listed.status_code == 405, listed.text
    assert listed.headers["allow"] == "POST"
    imports = await client.delete("/api/admin/imports")
    assert imports.status_code == 405
    assert set(imports.headers["allow"].split(", ")) == {"GET", "POST"}


async def test_import_events_are_declared_and_sent_as_event_stream(api, seeded) -> None:
    client, _ = api
    declared = SPEC["paths"]["/api/admin/imports/{import_id}/events"]["get"]["responses"]
    assert list(declared["200"]["content"]) == ["text/event-stream"]
    admin = {"x-api-key": seeded["admin"]}
    [job] = (await client.get("/api/admin/imports", headers=admin)).json()[:1]
    events = await client.get(f"/api/admin/imports/{job['id']}/events", headers=admin)
    assert events.headers["content-type"].startswith("text/event-stream")
    assert events.text.startswith("data: {")
