"""Custom steering vectors (`/api/vector/*`): stored per user, checked against the model's
dimension, readable by anyone, deleted only by their creator; steering with one goes
through the real inference service."""

import pytest
from conftest import INFERENCE_SECRET, SERVED_D_MODEL, SERVED_MODEL, SERVED_SOURCE

from interpedia_clients.inference import AsyncInferenceClient
from interpedia_clients.inference import models as inference


def _new(label: str, values: list[float], **extra: object) -> dict[str, object]:
    return {
        "modelId": SERVED_MODEL,
        "layerNumber": 6,
        "hookType": "hook_resid_post",
        "vector": values,
        "vectorDefaultSteerStrength": 12,
        "vectorLabel": label,
    } | extra


async def test_a_vector_is_made_read_listed_and_deleted_by_its_owner(api, seeded) -> None:
    client, _ = api
    alice, bob = {"x-api-key": seeded["alice"]}, {"x-api-key": seeded["bob"]}
    values = [0.5] * SERVED_D_MODEL
    made = await client.post("/api/vector/new", json=_new("calm", values), headers=alice)
    assert made.status_code == 200, made.text
    vector = made.json()["vector"]
    assert vector["source"] == "6-neuronpedia-resid-post"
    assert vector["hookName"] == "blocks.6.hook_resid_post"
    assert vector["label"] == "calm" and vector["defaultSteerStrength"] == 12
    assert vector["values"] == values
    key = {"modelId": SERVED_MODEL, "source": vector["source"], "index": vector["index"]}
    assert made.json()["url"] == f"/{SERVED_MODEL}/{vector['source']}/{vector['index']}"

    got = await client.post("/api/vector/get", json=key)  # anyone may read it
    assert got.status_code == 200
    assert got.json()["vector"]["vectorLabel"] == "calm"
    assert got.json()["vector"]["vector"] == values
    owned = (await client.post("/api/vector/list-owned", headers=alice)).json()["vectors"]
    assert [(v["layer"], v["index"]) for v in owned if v["vectorLabel"] == "calm"] == [
        (vector["source"], vector["index"])
    ]
    bobs = (await client.post("/api/vector/list-owned", headers=bob)).json()["vectors"]
    assert all(v["vectorLabel"] != "calm" for v in bobs)
    # The vector is a feature too: its page's data carries the vector's fields.
    feature = await client.get(f"/api/feature/{SERVED_MODEL}/{vector['source']}/{vector['index']}")
    assert feature.status_code == 200 and feature.json()["hasVector"] is True

    assert (await client.post("/api/vector/delete", json=key)).status_code == 401
    refused = await client.post("/api/vector/delete", json=key, headers=bob)
    assert refused.status_code == 403 and "creator" in refused.json()["detail"]
    deleted = await client.post("/api/vector/delete", json=key, headers=alice)
    assert deleted.status_code == 200
    assert (await client.post("/api/vector/get", json=key)).status_code == 404
    again = await client.post("/api/vector/delete", json=key, headers=alice)
    assert again.status_code == 404


async def test_bad_vectors_are_refused_and_nothing_is_stored(api, seeded) -> None:
    client, _ = api
    alice = {"x-api-key": seeded["alice"]}
    ok = [0.1] * SERVED_D_MODEL
    anonymous = await client.post("/api/vector/new", json=_new("anon", ok))
    assert anonymous.status_code == 401
    short = await client.post("/api/vector/new", json=_new("short", [0.1] * 10), headers=alice)
    assert short.status_code == 400
    assert "has 10 values" in short.json()["detail"]
    assert f"dimension {SERVED_D_MODEL}" in short.json()["detail"]
    deep = await client.post(
        "/api/vector/new", json=_new("deep", ok, layerNumber=30), headers=alice
    )
    assert deep.status_code == 400 and "layers 0 to 29" in deep.json()["detail"]
    nowhere = await client.post(
        "/api/vector/new", json=_new("nowhere", ok, modelId="no-such-model"), headers=alice
    )
    assert nowhere.status_code == 404
    hook = await client.post(
        "/api/vector/new", json=_new("hook", ok, hookType="hook_mlp_out"), headers=alice
    )
    assert hook.status_code == 422
    first = await client.post("/api/vector/new", json=_new("twice", ok), headers=alice)
    assert first.status_code == 200
    second = await client.post("/api/vector/new", json=_new("twice", ok), headers=alice)
    assert second.status_code == 409 and "twice" in second.json()["detail"]
    # Another user may use the same label.
    bobs = await client.post(
        "/api/vector/new", json=_new("twice", ok), headers={"x-api-key": seeded["bob"]}
    )
    assert bobs.status_code == 200
    labels = [
        v["vectorLabel"]
        for v in (await client.post("/api/vector/list-owned", headers=alice)).json()["vectors"]
    ]
    assert labels.count("twice") == 1
    assert not {"anon", "short", "deep", "nowhere", "hook"} & set(labels)


@pytest.mark.slow
async def test_steering_with_a_vector_equals_steering_with_the_same_direction(
    real_api, real_services, seeded
) -> None:
    """A vector holding feature 3's decoder row steers exactly as feature 3 does; a vector
    and an SAE feature steer together."""
    client, _ = real_api
    inference_client = AsyncInferenceClient(real_services["inference"], secret=INFERENCE_SECRET)
    row = await inference_client.util_sae_vector(
        inference.UtilSaeVectorRequest(model=SERVED_MODEL, source=SERVED_SOURCE, index=3)
    )
    made = await client.post(
        "/api/vector/new",
        json=_new("feature three", row.vector),
        headers={"x-api-key": seeded["alice"]},
    )
    assert made.status_code == 200, made.text
    vector = made.json()["vector"]
    as_vector = {"modelId": SERVED_MODEL, "layer": vector["source"], "index": vector["index"]}
    feature = {"modelId": SERVED_MODEL, "layer": SERVED_SOURCE, "index": "3"}
    body = {"modelId": SERVED_MODEL, "prompt": "Once upon a time", "n_tokens": 6, "temperature": 0}
    by_feature = await client.post(
        "/api/steer", json=body | {"features": [feature | {"strength": 60}]}
    )
    by_vector = await client.post(
        "/api/steer", json=body | {"features": [as_vector | {"strength": 60}]}
    )
    assert by_feature.status_code == 200 and by_vector.status_code == 200, by_vector.text
    assert by_vector.json()["STEERED"] == by_feature.json()["STEERED"]
    assert by_vector.json()["STEERED"] != by_vector.json()["DEFAULT"]
    both = await client.post(
        "/api/steer",
        json=body | {"features": [as_vector | {"strength": 30}, feature | {"strength": 30}]},
    )
    assert both.status_code == 200, both.text
    assert both.json()["STEERED"] == by_feature.json()["STEERED"]  # 30 + 30 of one direction


async def test_a_vectors_page_offers_to_steer_with_it(api, seeded) -> None:
    client, _ = api
    made = await client.post(
        "/api/vector/new",
        json=_new("page vector", [0.2] * SERVED_D_MODEL),
        headers={"x-api-key": seeded["alice"]},
    )
    vector = made.json()["vector"]
    page = await client.get(f"/{SERVED_MODEL}/{vector['source']}/{vector['index']}")
    assert page.status_code == 200
    assert "Steering vector “page vector”" in page.text
    steer_href = (
        f"/steer?model={SERVED_MODEL}&source={vector['source']}"
        f"&index={vector['index']}&strength=12.0"
    )
    assert steer_href in page.text and "steer with this vector" in page.text
    steer = await client.get(steer_href)
    assert steer.status_code == 200
    assert f'"layer": "{vector["source"]}"' in steer.text and '"strength": 12.0' in steer.text
