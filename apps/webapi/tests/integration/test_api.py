"""The REST API against real Postgres, in process, with fake inference/autointerp services."""

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
    "path",
    [
        f"/api/feature/{MODEL}/{SOURCE}/999",
        f"/api/feature/{MODEL}/nope/1",
        f"/api/feature/{MODEL}/{SOURCE}/-1",
        f"/api/feature/{MODEL}/{SOURCE}/abc",
    ],
)
async def test_unknown_feature_is_a_clean_error(api, path: str) -> None:
    client, _ = api
    response = await client.get(path)
    assert response.status_code in (400, 404)
    assert "detail" in response.json()


async def test_activation_new_goes_through_inference(api) -> None:
    client, fakes = api
    body = {
        "feature": {"modelId": MODEL, "layer": SOURCE, "index": "5"},
        "customText": "the cat sat",
    }
    response = await client.post("/api/activation/new", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["tokens"] == ["the", " cat", " sat"] and data["values"] == [0.0, 3.0, 0.0]
    assert data["maxValueTokenIndex"] == 1
    assert fakes.inference_client.calls[-1] == (
        "activation_single",
        {"prompt": "the cat sat", "model": MODEL, "source": SOURCE, "index": "5"},
    )
    many = await client.post("/api/activation/new", json=body | {"customText": ["a cat", "b"]})
    assert [r["maxValue"] for r in many.json()] == [3.0, 0.0]


async def test_text_too_long_is_refused(api) -> None:
    client, _ = api
    body = {"feature": {"modelId": MODEL, "layer": SOURCE, "index": 1}, "customText": "x" * 5000}
    response = await client.post("/api/activation/new", json=body)
    assert response.status_code == 422 and "at most 4000 characters" in response.json()["detail"]


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


async def test_semantic_and_hybrid_search_use_autointerp(api, db_sessionmaker) -> None:
    client, fakes = api
    from interpedia_db.models import Explanation

    async with db_sessionmaker() as session:
        ids = (
            (
                await session.execute(
                    select(Explanation.id)
                    .where(Explanation.model_id == MODEL)
                    .order_by(Explanation.index)
                    .limit(3)
                )
            )
            .scalars()
            .all()
        )
    fakes.autointerp_client.semantic = [
        {"explanation_id": i, "similarity": 0.9 - n / 10} for n, i in enumerate(ids)
    ]
    semantic = (
        await client.post(
            "/api/explanation/search",
            json={"modelId": MODEL, "layers": [SOURCE], "query": "felines", "mode": "semantic"},
        )
    ).json()
    assert [r["id"] for r in semantic["results"]] == [str(i) for i in ids]
    assert semantic["results"][0]["cosine_similarity"] == pytest.approx(0.9)
    hybrid = (
        await client.post("/api/explanation/search-all", json={"query": "cats", "mode": "hybrid"})
    ).json()
    assert str(ids[0]) in [r["id"] for r in hybrid["results"]]  # index 0 is a "cats" one


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


async def test_search_all_via_inference(api) -> None:
    client, _ = api
    response = await client.post(
        "/api/search-all",
        json={"modelId": MODEL, "sourceSet": "res-jb", "text": "a cat", "numResults": 5},
    )
    assert response.status_code == 200
    data = response.json()
    assert [r["index"] for r in data["result"]] == ["3", "2", "1"]
    assert data["tokens"] == ["a", " cat"]
    topk = await client.post(
        "/api/search-topk-by-token", json={"modelId": MODEL, "source": SOURCE, "text": "a cat"}
    )
    assert topk.json()["results"][1]["token"] == " cat"
    missing = await client.post(
        "/api/search-all", json={"modelId": MODEL, "sourceSet": "nope", "text": "a cat"}
    )
    assert missing.status_code == 404


async def test_steer_caches_and_streams(api) -> None:
    client, fakes = api
    body = {
        "modelId": MODEL,
        "prompt": "Once upon a time",
        "features": [{"modelId": MODEL, "layer": SOURCE, "index": "4", "strength": 20}],
    }
    first = (await client.post("/api/steer", json=body)).json()
    assert first["STEERED"].endswith("cats cats cats.") and first["cached"] is False
    second = (await client.post("/api/steer", json=body)).json()
    assert second["cached"] is True and second["id"] == first["id"]
    assert [c for c, _ in fakes.inference_client.calls].count("steer_completion") == 1

    async with client.stream(
        "POST", "/api/steer", json=body | {"prompt": "Stream me", "stream": True}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            json.loads(line[5:])
            async for line in response.aiter_lines()
            if line.startswith("data:")
        ]
    assert len(events) == 3 and events[-1]["done"] is True
    assert len(events[0]["STEERED"]) < len(events[1]["STEERED"])
    assert events[-1]["STEERED"] == "Stream me cats cats cats."
    cached = (await client.post("/api/steer", json=body | {"prompt": "Stream me"})).json()
    assert cached["cached"] is True


async def test_steer_chat_and_tokenize(api) -> None:
    client, _ = api
    chat = await client.post(
        "/api/steer-chat",
        json={
            "modelId": MODEL,
            "features": [{"modelId": MODEL, "layer": SOURCE, "index": 1, "strength": 5}],
            "defaultChatMessages": [{"role": "user", "content": "hi"}],
            "steeredChatMessages": [{"role": "user", "content": "hi"}],
        },
    )
    assert chat.status_code == 200 and chat.json()["STEERED"] == "chat cats cats cats."
    tokens = await client.post("/api/tokenize", json={"model": MODEL, "text": "a b"})
    assert tokens.json()["token_strings"] == ["a", " b"]


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


async def test_explanation_generate_and_score(api, seeded) -> None:
    client, _ = api
    alice = {"x-api-key": seeded["alice"]}
    assert (
        await client.post(
            "/api/explanation/generate", json={"modelId": MODEL, "layer": SOURCE, "index": 7}
        )
    ).status_code == 401
    made = (
        await client.post(
            "/api/explanation/generate",
            headers=alice,
            json={"modelId": MODEL, "layer": SOURCE, "index": 7},
        )
    ).json()["explanation"]
    assert made["description"] == "the word cat"
    score = (
        await client.post(
            "/api/explanation/score", headers=alice, json={"explanationId": made["id"]}
        )
    ).json()["score"]
    assert score["value"] == 0.875
    feature = (await client.get(f"/api/feature/{MODEL}/{SOURCE}/7")).json()
    mine = next(e for e in feature["explanations"] if e["id"] == made["id"])
    assert mine["scores"][0]["value"] == 0.875


async def test_rate_limit(seeded, db_sessionmaker, tmp_path) -> None:
    import httpx
    from conftest import FakeUpstreams, make_settings

    from interpedia_webapi.app import create_app
    from interpedia_webapi.deps import get_upstreams

    app = create_app(make_settings(None, tmp_path, rate_limit_per_minute=1, rate_limit_burst=2))
    app.state.sessionmaker = db_sessionmaker
    app.dependency_overrides[get_upstreams] = FakeUpstreams
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        body = {"model": MODEL, "text": "a"}
        codes = [(await client.post("/api/tokenize", json=body)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        # another caller has its own bucket
        other = await client.post(
            "/api/tokenize", json=body, headers={"x-api-key": seeded["alice"]}
        )
        assert other.status_code == 200


async def test_no_inference_configured_is_400_not_500(seeded, db_sessionmaker, tmp_path) -> None:
    import httpx
    from conftest import make_settings

    from interpedia_webapi.app import create_app

    app = create_app(make_settings(None, tmp_path))
    app.state.sessionmaker = db_sessionmaker
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
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
