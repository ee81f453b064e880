"""The REST API against real Postgres, in process, with no other service configured.

What goes through the inference and autointerp services is in `test_real_services.py`.
"""

import asyncio
import hashlib
import json

import pytest
from sqlalchemy import select
from webapi_factories import write_export

from interpedia_db.models import ApiKey

MODEL, SOURCE = "webapi-test", "6-res-jb"


async def test_model_list_counts_features(api) -> None:
    client, _ = api
    response = await client.get("/api/model/list")
    assert response.status_code == 200
    model = next(m for m in response.json() if m["id"] == MODEL)
    source = next(s for s in model["sources"] if s["id"] == SOURCE)
    assert source["features"] == 40 and source["explanations"] == 40
    assert model["sourceSets"] == ["res-jb"]


async def test_feature_has_neuronpedia_fields(api) -> None:
    client, _ = api
    body = (await client.get(f"/api/feature/{MODEL}/{SOURCE}/3")).json()
    assert body["modelId"] == MODEL and body["layer"] == SOURCE and body["index"] == "3"
    assert body["pos_str"] == [" cats", " kitten", " feline"]
    assert len(body["freq_hist_data_bar_heights"]) == 20
    assert len(body["activations"]) == 3
    top = body["activations"][0]
    assert {
        "tokens",
        "values",
        "maxValue",
        "maxValueTokenIndex",
        "binMin",
        "binMax",
        "binContains",
        "dataIndex",
        "dataSource",
    } <= top.keys()
    assert body["activations"][0]["maxValue"] >= body["activations"][1]["maxValue"]
    assert body["explanations"][0]["description"].startswith("dogs running home")


@pytest.mark.parametrize(
    ("path", "status", "detail"),
    [
        (f"/api/feature/{MODEL}/{SOURCE}/999", 404, f"no feature {MODEL}/{SOURCE}/999"),
        (f"/api/feature/{MODEL}/nope/1", 404, f"no feature {MODEL}/nope/1"),
        (f"/api/feature/{MODEL}/{SOURCE}/-1", 400, "a feature index is a non-negative integer"),
        (f"/api/feature/{MODEL}/{SOURCE}/abc", 400, "a feature index is a non-negative integer"),
    ],
)
async def test_unknown_feature_is_a_clean_error(api, path: str, status: int, detail: str) -> None:
    client, _ = api
    response = await client.get(path)
    assert response.status_code == status
    assert response.json()["detail"].startswith(detail)


async def test_text_too_long_is_refused(api) -> None:
    client, _ = api
    body = {"feature": {"modelId": MODEL, "layer": SOURCE, "index": 1}, "customText": "x" * 5000}
    response = await client.post("/api/activation/new", json=body)
    assert response.status_code == 400 and "limit is 4000" in response.json()["detail"]


async def test_keyword_search_is_parameterised(api) -> None:
    client, _ = api
    response = await client.post(
        "/api/explanation/search-model", json={"modelId": MODEL, "query": "cats", "mode": "keyword"}
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert results and all("cats" in r["description"] for r in results)
    assert results[0]["neuron"]["modelId"] == MODEL
    hostile = "'); DROP TABLE explanations; -- & | ! :* <-> \\"
    response = await client.post(
        "/api/explanation/search-all", json={"query": hostile, "mode": "keyword"}
    )
    assert response.status_code == 200
    again = await client.post(
        "/api/explanation/search-all", json={"query": "cats", "mode": "keyword"}
    )
    assert again.json()["resultsCount"] > 0


async def test_search_release(api) -> None:
    client, _ = api
    found = (
        await client.post(
            "/api/explanation/search-release",
            json={"releaseName": f"{MODEL}-res-jb", "query": "dogs", "mode": "keyword"},
        )
    ).json()
    assert found["resultsCount"] > 0
    none = (
        await client.post(
            "/api/explanation/search-release",
            json={"releaseName": "nope", "query": "dogs", "mode": "keyword"},
        )
    ).json()
    assert none["resultsCount"] == 0


async def test_lists_need_a_key_and_belong_to_their_owner(api, seeded) -> None:
    client, _ = api
    anonymous = await client.post("/api/list/new", json={"name": "mine"})
    assert anonymous.status_code == 401
    wrong = await client.post("/api/list/new", json={"name": "mine"}, headers={"x-api-key": "nope"})
    assert wrong.status_code == 401
    alice = {"x-api-key": seeded["alice"]}
    created = (
        await client.post(
            "/api/list/new", json={"name": "Cat features", "description": "d"}, headers=alice
        )
    ).json()
    added = await client.post(
        "/api/list/add-features",
        headers=alice,
        json={
            "listId": created["id"],
            "featuresToAdd": [
                {"modelId": MODEL, "layer": SOURCE, "index": 2, "description": "cats"},
                {"modelId": MODEL, "layer": SOURCE, "index": "4"},
            ],
        },
    )
    assert [i["index"] for i in added.json()] == ["2", "4"]
    got = (await client.post("/api/list/get", json={"listId": created["id"]})).json()
    assert got["name"] == "Cat features" and len(got["neurons"]) == 2
    bob = {"x-api-key": seeded["bob"]}
    stolen = await client.post(
        "/api/list/add-features",
        headers=bob,
        json={
            "listId": created["id"],
            "featuresToAdd": [{"modelId": MODEL, "layer": SOURCE, "index": 1}],
        },
    )
    assert stolen.status_code == 403
    unknown = await client.post(
        "/api/list/add-features",
        headers=alice,
        json={
            "listId": created["id"],
            "featuresToAdd": [{"modelId": MODEL, "layer": SOURCE, "index": 9999}],
        },
    )
    assert unknown.status_code == 404
    removed = await client.post(
        "/api/list/remove",
        headers=alice,
        json={"listId": created["id"], "modelId": MODEL, "layer": SOURCE, "index": "2"},
    )
    assert removed.status_code == 200
    mine = (await client.post("/api/list/list", headers=alice)).json()
    assert created["id"] in [x["id"] for x in mine]
    deleted = await client.post("/api/list/delete", headers=alice, json={"listId": created["id"]})
    assert deleted.status_code == 200
    gone = await client.post("/api/list/get", json={"listId": created["id"]})
    assert gone.status_code == 404


async def test_admin_routes_refuse_normal_keys_and_keys_are_hashed(
    api, seeded, db_sessionmaker
) -> None:
    client, _ = api
    for headers, status in (({}, 401), ({"x-api-key": seeded["alice"]}, 403)):
        assert (await client.get("/api/admin/users", headers=headers)).status_code == status
        assert (
            await client.post("/api/admin/imports", headers=headers, json={"location": "/tmp"})
        ).status_code == status
    admin = {"x-api-key": seeded["admin"]}
    created = (await client.post("/api/admin/users", headers=admin, json={"name": "carol"})).json()
    assert created["apiKey"].startswith("ip_")
    me = (await client.get("/api/me", headers={"x-api-key": created["apiKey"]})).json()
    assert me["name"] == "carol" and me["isAdmin"] is False
    async with db_sessionmaker() as session:
        hashes = set((await session.execute(select(ApiKey.key_hash))).scalars())
    assert hashlib.sha256(created["apiKey"].encode()).hexdigest() in hashes
    assert created["apiKey"] not in hashes
    dup = await client.post("/api/admin/users", headers=admin, json={"name": "carol"})
    assert dup.status_code == 409


async def test_key_rotation(api) -> None:
    client, _ = api
    admin = {"x-api-key": "admin-key-for-tests-0123456789"}
    user = (await client.post("/api/admin/users", headers=admin, json={"name": "dave"})).json()
    headers = {"x-api-key": user["apiKey"]}
    new = (await client.post("/api/me/keys", headers=headers)).json()
    keys = (await client.get("/api/me/keys", headers=headers)).json()
    old_id = next(k["id"] for k in keys if k["id"] != new["id"])
    assert (await client.delete(f"/api/me/keys/{old_id}", headers=headers)).status_code == 200
    assert (await client.get("/api/me", headers=headers)).status_code == 401
    assert (await client.get("/api/me", headers={"x-api-key": new["apiKey"]})).status_code == 200


async def test_rate_limit(seeded, db_sessionmaker, tmp_path) -> None:
    from conftest import in_process

    async with in_process(
        db_sessionmaker, tmp_path, rate_limit_per_minute=1, rate_limit_burst=2
    ) as (client, _):
        body = {"query": "cats", "mode": "keyword"}
        codes = [
            (await client.post("/api/explanation/search-all", json=body)).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        # another caller has its own bucket
        other = await client.post(
            "/api/explanation/search-all", json=body, headers={"x-api-key": seeded["alice"]}
        )
        assert other.status_code == 200


async def test_no_inference_configured_is_400_not_500(api) -> None:
    client, _ = api
    response = await client.post("/api/tokenize", json={"model": MODEL, "text": "a"})
    assert response.status_code == 400
    assert "no inference service" in response.json()["detail"]
    bad = await client.post(
        "/api/steer", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 422


async def test_admin_import_over_the_api_with_progress_events(api, seeded, tmp_path) -> None:
    client, _ = api
    admin = {"x-api-key": seeded["admin"]}
    export = write_export(tmp_path / "exp", "webapi-import", "2-res-api", n_features=1500)
    available = (
        await client.get(
            "/api/admin/import/available", params={"location": str(tmp_path / "exp")}, headers=admin
        )
    ).json()
    assert [(a["modelId"], a["sourceId"]) for a in available] == [("webapi-import", "2-res-api")]
    started = (
        await client.post("/api/admin/imports", headers=admin, json={"location": str(export)})
    ).json()
    async with client.stream(
        "GET", f"/api/admin/imports/{started['id']}/events", headers=admin
    ) as response:
        events = [
            json.loads(line[5:])
            async for line in response.aiter_lines()
            if line.startswith("data:")
        ]
    assert events[-1]["status"] == "complete"
    assert events[-1]["files_done"] == events[-1]["files_total"]
    report = (await client.post(f"/api/admin/imports/{started['id']}/verify", headers=admin)).json()
    assert report["ok"] is True, report
    detail = (await client.get(f"/api/admin/imports/{started['id']}", headers=admin)).json()
    assert all(f["state"] == "imported" for f in detail["files"])
    bad = await client.post(
        "/api/admin/imports", headers=admin, json={"location": str(tmp_path / "nothing")}
    )
    assert bad.status_code == 400
    await asyncio.sleep(0)
