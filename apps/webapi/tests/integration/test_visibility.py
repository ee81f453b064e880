"""Ownership and visibility, one test per resource (lists, steering vectors, explanations,
uploaded source sets): another user cannot read a private item (404, as Neuronpedia
answers), nor change or delete what is not theirs (403); anonymous writes are 401; an admin
can do all of it; private items are left out of listings, search and batch reads."""

import uuid

from conftest import MODEL, SERVED_D_MODEL, SERVED_MODEL, SOURCE


def _keys(seeded) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    return (
        {"x-api-key": seeded["alice"]},
        {"x-api-key": seeded["bob"]},
        {"x-api-key": seeded["admin"]},
    )


async def test_lists(api, seeded) -> None:
    client, _ = api
    alice, bob, admin = _keys(seeded)
    made = await client.post(
        "/api/list/new", json={"name": "secret list", "visibility": "PRIVATE"}, headers=alice
    )
    assert made.status_code == 200 and made.json()["visibility"] == "PRIVATE"
    list_id = made.json()["id"]
    body = {"listId": list_id}
    add = {
        "listId": list_id,
        "featuresToAdd": [{"modelId": MODEL, "layer": SOURCE, "index": "1"}],
    }

    assert (await client.post("/api/list/get", json=body, headers=alice)).status_code == 200
    hidden = await client.post("/api/list/get", json=body, headers=bob)
    assert hidden.status_code == 404 and hidden.json()["detail"] == f"no list {list_id}"
    assert (await client.post("/api/list/get", json=body)).status_code == 404
    assert (await client.get(f"/lists/{list_id}")).status_code == 404
    assert "secret list" not in (await client.get("/lists")).text
    assert (await client.post("/api/list/add-features", json=add)).status_code == 401
    refused = await client.post("/api/list/add-features", json=add, headers=bob)
    assert refused.status_code == 403 and "creator" in refused.json()["detail"]
    assert (await client.post("/api/list/delete", json=body, headers=bob)).status_code == 403

    assert (await client.post("/api/list/add-features", json=add, headers=admin)).status_code == 200
    read = await client.post("/api/list/get", json=body, headers=admin)
    assert [n["index"] for n in read.json()["neurons"]] == ["1"]

    unlisted = await client.post(
        "/api/list/new", json={"name": "shared via link", "visibility": "unlisted"}, headers=alice
    )
    by_link = await client.post("/api/list/get", json={"listId": unlisted.json()["id"]})
    assert by_link.status_code == 200 and by_link.json()["visibility"] == "UNLISTED"
    assert "shared via link" not in (await client.get("/lists")).text
    update = {"listId": unlisted.json()["id"], "name": "shared via link", "visibility": "PRIVATE"}
    assert (await client.post("/api/list/update", json=update, headers=bob)).status_code == 403
    made_private = await client.post("/api/list/update", json=update, headers=alice)
    assert made_private.status_code == 200 and made_private.json()["visibility"] == "PRIVATE"
    assert (
        await client.post("/api/list/get", json={"listId": update["listId"]})
    ).status_code == 404
    public = await client.post("/api/list/new", json={"name": "everyone's"}, headers=alice)
    assert public.json()["visibility"] == "PUBLIC"
    assert "everyone&#39;s" in (await client.get("/lists")).text

    assert (await client.post("/api/list/delete", json=body, headers=admin)).status_code == 200
    assert (await client.post("/api/list/get", json=body, headers=alice)).status_code == 404


async def test_vectors(api, seeded) -> None:
    client, _ = api
    alice, bob, admin = _keys(seeded)
    label = f"private-{uuid.uuid4().hex[:6]}"
    made = await client.post(
        "/api/vector/new",
        json={
            "modelId": SERVED_MODEL,
            "layerNumber": 3,
            "hookType": "hook_resid_post",
            "vector": [0.25] * SERVED_D_MODEL,
            "vectorLabel": label,
            "visibility": "PRIVATE",
        },
        headers=alice,
    )
    assert made.status_code == 200, made.text
    v = made.json()["vector"]
    key = {"modelId": SERVED_MODEL, "source": v["source"], "index": v["index"]}
    feature_url = f"/api/feature/{SERVED_MODEL}/{v['source']}/{v['index']}"

    mine = await client.post("/api/vector/get", json=key, headers=alice)
    assert mine.status_code == 200 and mine.json()["vector"]["visibility"] == "PRIVATE"
    for headers in (bob, {}):
        assert (await client.post("/api/vector/get", json=key, headers=headers)).status_code == 404
        assert (await client.get(feature_url, headers=headers)).status_code == 404
    batch = await client.post(
        "/api/features",
        json=[{"modelId": SERVED_MODEL, "layer": v["source"], "index": v["index"]}],
        headers=bob,
    )
    assert batch.status_code == 200 and batch.json() == []
    assert (await client.get(feature_url, headers=alice)).status_code == 200

    assert (await client.post("/api/vector/delete", json=key)).status_code == 401
    assert (await client.post("/api/vector/delete", json=key, headers=bob)).status_code == 403
    assert (await client.post("/api/vector/get", json=key, headers=admin)).status_code == 200
    assert (await client.post("/api/vector/delete", json=key, headers=admin)).status_code == 200
    assert (await client.post("/api/vector/get", json=key, headers=alice)).status_code == 404


async def test_explanations(api, seeded) -> None:
    client, _ = api
    alice, bob, admin = _keys(seeded)
    words = f"zebra crossing {uuid.uuid4().hex[:6]}"
    made = await client.post(
        "/api/explanation/new",
        json={
            "feature": {
                "modelId": MODEL,
                "layer": SOURCE,
                "index": "3",
                "explanation": words,
                "visibility": "PRIVATE",
            }
        },
        headers=alice,
    )
    assert made.status_code == 200, made.text
    explanation_id = made.json()["explanation"]["id"]
    assert made.json()["explanation"]["visibility"] == "PRIVATE"
    url = f"/api/explanation/{explanation_id}"

    assert (await client.get(url, headers=alice)).status_code == 200
    hidden = await client.get(url, headers=bob)
    assert (
        hidden.status_code == 404 and hidden.json()["detail"] == f"no explanation {explanation_id}"
    )
    assert (await client.get(url)).status_code == 404
    assert (await client.post(f"{url}/vote", headers=bob)).status_code == 404

    def texts(feature: dict) -> list[str]:
        return [e["description"] for e in feature["explanations"]]

    feature_url = f"/api/feature/{MODEL}/{SOURCE}/3"
    assert words in texts((await client.get(feature_url, headers=alice)).json())
    assert words not in texts((await client.get(feature_url, headers=bob)).json())
    assert words not in (await client.get(f"/{MODEL}/{SOURCE}/3")).text
    search = {"modelId": MODEL, "query": words, "mode": "keyword"}
    found = await client.post("/api/explanation/search", json=search, headers=bob)
    assert found.status_code == 200 and found.json()["results"] == []
    own = await client.post("/api/explanation/search", json=search, headers=alice)
    assert [r["description"] for r in own.json()["results"]] == [words]
    export = f"/api/explanation/export?modelId={MODEL}&layer={SOURCE}&limit=1000"
    exported = (await client.get(export, headers=bob)).json()["explanations"]
    assert words not in [e["description"] for e in exported]

    assert (await client.post(f"{url}/delete")).status_code == 401
    assert (await client.post(f"{url}/delete", headers=bob)).status_code == 403
    assert (await client.get(url, headers=admin)).status_code == 200
    assert (await client.post(f"{url}/delete", headers=admin)).status_code == 200
    assert (await client.get(url, headers=alice)).status_code == 404


async def test_uploaded_sources(api, seeded) -> None:
    client, _ = api
    alice, bob, admin = _keys(seeded)
    model_id = f"vis-{uuid.uuid4().hex[:6]}"
    made = await client.post("/api/model/new", json={"id": model_id, "layers": 2}, headers=alice)
    assert made.status_code == 200, made.text
    new_set = {"modelId": model_id, "name": "priv-res", "visibility": "PRIVATE"}
    assert (await client.post("/api/source-set/new", json=new_set)).status_code == 401
    created = await client.post("/api/source-set/new", json=new_set, headers=alice)
    assert created.status_code == 200 and created.json()["visibility"] == "PRIVATE"
    features = {
        "modelId": model_id,
        "source": "1-priv-res",
        "features": [{"index": 0, "activations": [{"tokens": [" a", " b"], "values": [0.0, 1.0]}]}],
    }
    upload = await client.post("/api/feature/upload-batch", json=features, headers=bob)
    assert upload.status_code == 403
    upload = await client.post("/api/feature/upload-batch", json=features, headers=alice)
    assert upload.status_code == 200, upload.text

    set_url = f"/api/source-set/{model_id}/priv-res"
    feature_url = f"/api/feature/{model_id}/1-priv-res/0"
    assert (await client.get(set_url, headers=alice)).status_code == 200
    assert (await client.get(feature_url, headers=alice)).status_code == 200
    for headers in (bob, {}):
        got = await client.get(set_url, headers=headers)
        assert (
            got.status_code == 404 and got.json()["detail"] == f"no source set {model_id}/priv-res"
        )
        assert (await client.get(feature_url, headers=headers)).status_code == 404
        offset = await client.post(
            "/api/features-offset",
            json={"modelId": model_id, "layer": "1-priv-res", "offset": 0},
            headers=headers,
        )
        assert offset.status_code == 404
    batch = await client.post(
        "/api/features", json=[{"modelId": model_id, "layer": "1-priv-res", "index": 0}]
    )
    assert batch.status_code == 200 and batch.json() == []
    assert (await client.get(f"/{model_id}/1-priv-res/0")).status_code == 404

    def sets(models: list[dict]) -> list[str]:
        return next(m["sourceSets"] for m in models if m["id"] == model_id)

    assert sets((await client.get("/api/model/list", headers=bob)).json()) == []
    assert sets((await client.get("/api/model/list", headers=alice)).json()) == ["priv-res"]
    assert "1-priv-res" not in (await client.get(f"/{model_id}")).text
    evals = (await client.get(f"/api/evals/{model_id}", headers=bob)).json()["sources"]
    assert "1-priv-res" not in [row["source"] for row in evals]
    assert (await client.get(f"/api/evals/{model_id}/1-priv-res", headers=bob)).status_code == 404
    run = {"modelId": model_id, "source": "1-priv-res", "customText": "hello"}
    assert (await client.post("/api/activation/source", json=run, headers=bob)).status_code == 404
    assert (await client.get(set_url, headers=admin)).status_code == 200
    assert (await client.get(feature_url, headers=admin)).status_code == 200

    # Neuronpedia's default for an uploaded set: read by link, not private.
    unlisted = await client.post(
        "/api/source-set/new", json={"modelId": model_id, "name": "lab-res"}, headers=alice
    )
    assert unlisted.json()["visibility"] == "UNLISTED"
    assert (await client.get(f"/api/source-set/{model_id}/lab-res")).status_code == 200
