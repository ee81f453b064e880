"""Many features at once (`/api/features`, `/api/features-offset`) and similar features
across sources (`/api/cossim`, through the real inference service)."""

import pytest
from conftest import INFERENCE_SECRET, MODEL, SERVED_MODEL, SERVED_SOURCE, SOURCE

from interpedia_clients.inference import AsyncInferenceClient
from interpedia_clients.inference import models as inference


async def test_features_in_the_order_asked_with_capped_activations(api) -> None:
    client, _ = api
    asked = [
        {"modelId": MODEL, "layer": SOURCE, "index": 7, "maxActsToReturn": 1},
        {"modelId": MODEL, "layer": SOURCE, "index": "2"},
        {"modelId": MODEL, "layer": SOURCE, "index": 99_999},  # unknown: left out
        {"modelId": MODEL, "layer": SOURCE, "index": 0},
    ]
    response = await client.post("/api/features", json=asked)
    assert response.status_code == 200, response.text
    got = response.json()
    assert [f["index"] for f in got] == ["7", "2", "0"]
    assert all(len(f["activations"]) == 1 for f in got)
    assert got[0]["explanations"][0]["description"]
    too_many = await client.post("/api/features", json=[asked[0]] * 65)
    assert too_many.status_code == 422


async def test_features_offset_pages_through_a_source(api) -> None:
    client, _ = api
    first = (
        await client.post("/api/features-offset", json={"modelId": MODEL, "layer": SOURCE})
    ).json()
    second = (
        await client.post(
            "/api/features-offset", json={"modelId": MODEL, "layer": SOURCE, "offset": 25}
        )
    ).json()
    assert [f["index"] for f in first] == [str(i) for i in range(25)]
    assert [f["index"] for f in second] == [str(i) for i in range(25, 40)]
    assert all(f["maxActApprox"] > 0 for f in first + second)


@pytest.mark.slow
async def test_cossim_finds_the_feature_itself_from_its_row_or_a_vector_of_it(
    real_api, real_services, seeded
) -> None:
    client, _ = real_api
    body = {
        "modelId": SERVED_MODEL,
        "source": SERVED_SOURCE,
        "index": 5,
        "targetModelId": SERVED_MODEL,
        "targetSourceId": SERVED_SOURCE,
    }
    response = await client.post("/api/cossim", json=body)
    assert response.status_code == 200, response.text
    nearest = response.json()["topk_decoder_cossim_features"]
    assert len(nearest) == 10
    assert nearest[0]["feature"]["index"] == 5
    assert nearest[0]["cosine_similarity"] == pytest.approx(1.0, abs=1e-4)

    row = await AsyncInferenceClient(
        real_services["inference"], secret=INFERENCE_SECRET
    ).util_sae_vector(
        inference.UtilSaeVectorRequest(model=SERVED_MODEL, source=SERVED_SOURCE, index=5)
    )
    made = await client.post(
        "/api/vector/new",
        json={
            "modelId": SERVED_MODEL,
            "layerNumber": 6,
            "hookType": "hook_resid_post",
            "vector": [2 * v for v in row.vector],
            "vectorLabel": "cossim five",
        },
        headers={"x-api-key": seeded["alice"]},
    )
    vector = made.json()["vector"]
    by_vector = await client.post(
        "/api/cossim", json=body | {"source": vector["source"], "index": vector["index"]}
    )
    assert by_vector.status_code == 200, by_vector.text
    assert by_vector.json()["topk_decoder_cossim_features"][0]["feature"]["index"] == 5
    other = await client.post("/api/cossim", json=body | {"targetModelId": MODEL})
    assert other.status_code == 400 and "same model" in other.json()["detail"]
