"""Exploring a source over the API and pages: the feature map, evaluations, top features by
token, the sortable feature table, the model page and a dead feature's page."""

import math
import struct

import httpx
import pytest
from conftest import INFERENCE_SECRET, SERVED_MODEL, SERVED_SOURCE
from sqlalchemy import select, update

from interpedia_db.models import Feature, Source, SourceSet

MODEL, SOURCE = "webapi-test", "6-res-jb"
BARE = "7-res-bare"  # a source with one dead feature, no map and no evaluations


@pytest.fixture(scope="module")
async def bare_source(seeded, db_sessionmaker) -> str:
    async with db_sessionmaker.begin() as session:
        if await session.get(Source, (MODEL, BARE)) is None:
            session.add(SourceSet(model_id=MODEL, name="res-bare"))
            await session.flush()
            session.add(
                Source(
                    model_id=MODEL,
                    id=BARE,
                    set_name="res-bare",
                    hook_name="blocks.7.hook_resid_pre",
                    layer=7,
                    architecture="topk",
                    d_sae=1,
                    has_dashboards=True,
                    num_prompts=2048,
                    num_tokens_in_prompt=128,
                )
            )
            await session.flush()
            session.add(
                Feature(model_id=MODEL, source_id=BARE, index=0, max_act=0.0, frac_nonzero=0.0)
            )
    return BARE


async def test_umap_as_neuronpedia_serves_it(api, explored, bare_source) -> None:
    client, _ = api
    response = await client.post("/api/umap", json={"modelId": MODEL, "layers": [SOURCE, BARE]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body[BARE] == []  # no map yet: empty, as Neuronpedia answers
    points = body[SOURCE]
    assert len(points) == 40 and [p["index"] for p in points] == [str(i) for i in range(40)]
    third = points[3]
    assert third["layer"] == SOURCE and third["description"] == "dogs running home #3"
    assert third["umap_x"] == pytest.approx(11.2) and third["umap_y"] == pytest.approx(0.5)
    assert third["umap_cluster"] == 1 and third["umap_log_feature_sparsity"] == pytest.approx(-2.7)
    assert third["id"] is not None
    missing = await client.post("/api/umap", json={"modelId": MODEL, "layers": ["9-nope"]})
    assert missing.status_code == 404 and "9-nope" in missing.json()["detail"]


async def test_umap_points_are_columnar_and_a_missing_map_says_how_to_make_one(
    api, explored, bare_source
) -> None:
    client, _ = api
    body = (await client.get(f"/api/umap/{MODEL}/{SOURCE}")).json()
    assert body["count"] == 40 and body["index"] == list(range(40))
    assert len(body["x"]) == len(body["y"]) == len(body["description"]) == 40
    assert body["cluster"][:4] == [0, 1, 0, 1] and body["description"][0] == "mentions of cats #0"
    missing = await client.get(f"/api/umap/{MODEL}/{BARE}")
    assert missing.status_code == 404
    assert f"interpedia umap --model {MODEL} --source {BARE}" in missing.json()["detail"]


async def test_umap_coordinates_and_explanations_split_the_columnar_map(
    api, explored, bare_source
) -> None:
    """What the source page draws first, the columnar answer's points as little-endian
    int32/float32 columns, then what it shows on hover: the explanations."""
    client, _ = api
    columnar = (await client.get(f"/api/umap/{MODEL}/{SOURCE}")).json()
    response = await client.get(f"/api/umap/{MODEL}/{SOURCE}/coordinates")
    assert response.headers["content-type"] == "application/octet-stream"
    n = columnar["count"]
    assert len(response.content) == 20 * n
    index, x, y, cluster, log_density = (
        struct.unpack_from(f"<{n}{kind}", response.content, k * 4 * n)
        for k, kind in enumerate("iffif")
    )
    assert list(index) == columnar["index"] and list(cluster) == columnar["cluster"]
    assert x == pytest.approx(columnar["x"], abs=1e-3)
    assert y == pytest.approx(columnar["y"], abs=1e-3)
    assert [None if math.isnan(v) else round(v, 3) for v in log_density] == pytest.approx(
        columnar["logDensity"], abs=1e-3
    )
    explanations = (await client.get(f"/api/umap/{MODEL}/{SOURCE}/explanations")).json()
    assert explanations["index"] == columnar["index"]  # every test feature is explained
    assert explanations["description"] == columnar["description"]
    for part in ("coordinates", "explanations"):
        missing = await client.get(f"/api/umap/{MODEL}/{BARE}/{part}")
        assert missing.status_code == 404
        assert f"interpedia umap --model {MODEL} --source {BARE}" in missing.json()["detail"]


async def test_evaluations_of_a_source_and_of_a_model(api, explored, bare_source) -> None:
    client, _ = api
    source = (await client.get(f"/api/evals/{MODEL}/{SOURCE}")).json()
    assert set(source["evals"]) == {"core", "absorption_first_letter"}
    assert source["evals"]["core"]["eval_result_metrics"]["sparsity"]["l0"] == 32.0
    model = (await client.get(f"/api/evals/{MODEL}")).json()
    rows = {row["source"]: row for row in model["sources"]}
    assert rows[BARE]["metrics"] == {}
    assert rows[SOURCE]["metrics"]["core||sparsity||l0"] == 32.0
    assert rows[SOURCE]["metrics"][
        "absorption_first_letter||mean||mean_absorption_fraction_score"
    ] == pytest.approx(0.2)
    assert (await client.get("/api/evals/no-such-model")).status_code == 404


@pytest.mark.slow
async def test_top_features_by_token_are_specific_and_explained(
    real_api, real_services, db_sessionmaker
) -> None:
    """Brute force against the inference service's own 64 candidates per token: the answer
    is exactly the most specific features under the density threshold, with explanations."""
    client, _ = real_api
    text = "the cat sat on the mat"
    body = {"modelId": SERVED_MODEL, "source": SERVED_SOURCE, "text": text, "numResults": 3}
    async with httpx.AsyncClient(base_url=real_services["inference"]) as inference:
        direct = (
            await inference.post(
                "/v1/activation/topk-by-token",
                json={"prompt": text, "model": SERVED_MODEL, "source": SERVED_SOURCE, "top_k": 64},
                headers={"x-secret-key": INFERENCE_SECRET},
            )
        ).json()
    async with db_sessionmaker() as session:
        rows = await session.execute(
            select(Feature.index, Feature.frac_nonzero, Feature.max_act).where(
                Feature.model_id == SERVED_MODEL, Feature.source_id == SERVED_SOURCE
            )
        )
        stats = {i: (density, top) for i, density, top in rows.all()}

    def expected(threshold: float, skip: int | None = None) -> list[list[int]]:
        ranked = []
        for position in direct["results"]:
            if position["is_special"]:
                continue
            scored = []
            for f in position["top_features"]:
                index, value = f["feature_index"], f["activation_value"]
                density, top = stats[index]
                if value <= 0 or index == skip or (threshold and density > threshold):
                    continue
                scored.append((-value / top * -math.log10(density), index))
            ranked.append([index for _, index in sorted(scored)[:3]])
        return ranked

    answer = (await client.post("/api/search-topk-by-token", json=body)).json()
    assert [r["position"] for r in answer["results"]] == [1, 2, 3, 4, 5, 6]  # BOS left out
    got = [[f["featureIndex"] for f in r["topFeatures"]] for r in answer["results"]]
    assert got == expected(0.01)
    # Not what raw activation would pick: the brute force is not trivially the inference's.
    by_value = [[f["feature_index"] for f in p["top_features"][:3]] for p in direct["results"][1:]]
    assert got != by_value
    first = answer["results"][0]["topFeatures"][0]
    assert first["feature"]["description"].endswith(f"#{first['featureIndex']}")
    assert first["specificity"] >= answer["results"][0]["topFeatures"][-1]["specificity"]

    # A feature denser than the threshold is skipped; threshold 0 keeps it.
    dense = first["featureIndex"]

    async def set_density(value: float) -> None:
        async with db_sessionmaker.begin() as session:
            await session.execute(
                update(Feature)
                .where(
                    Feature.model_id == SERVED_MODEL,
                    Feature.source_id == SERVED_SOURCE,
                    Feature.index == dense,
                )
                .values(frac_nonzero=value)
            )

    await set_density(0.3)
    try:
        skipped = (await client.post("/api/search-topk-by-token", json=body)).json()
        assert [[f["featureIndex"] for f in r["topFeatures"]] for r in skipped["results"]] == (
            expected(0.01, skip=dense)
        )
        every = (
            await client.post(
                "/api/search-topk-by-token", json={**body, "densityThreshold": 0, "numResults": 64}
            )
        ).json()
        assert any(dense in [f["featureIndex"] for f in r["topFeatures"]] for r in every["results"])
    finally:
        await set_density(stats[dense][0])
    for bad in (1, 1.5, -0.1):
        refused = await client.post(
            "/api/search-topk-by-token", json={**body, "densityThreshold": bad}
        )
        assert refused.status_code == 422, bad


async def test_source_page_has_map_search_evaluations_and_sorts(api, explored) -> None:
    client, _ = api
    page = (await client.get(f"/{MODEL}/{SOURCE}")).text
    assert '<canvas id="feature-map"' in page and 'src="/static/source.js"' in page
    assert 'id="jump-form"' in page and 'id="search-form"' in page and 'id="text-form"' in page
    assert 'data-metric="core||sparsity||l0"><b>32.0</b>' in page
    assert "Absorption by first letter" in page and 'aria-label="feature density histogram"' in page

    def indices(html: str) -> list[int]:
        rows = html.split('<tr class="feature-row">')[1:]
        return [int(r.split(f'href="/{MODEL}/{SOURCE}/')[1].split('"')[0]) for r in rows]

    assert indices(page)[:3] == [0, 1, 2]
    densest = (await client.get(f"/{MODEL}/{SOURCE}?sort=density&order=desc")).text
    # frac_nonzero is 0.001 × (1 + i % 10): indices ending in 9 first, then by index.
    assert indices(densest)[:4] == [9, 19, 29, 39]
    by_act = (await client.get(f"/{MODEL}/{SOURCE}?sort=max_act&order=asc")).text
    assert indices(by_act)[:2] == [0, 7]  # max_act 5 + i % 7
    bad = await client.get(f"/{MODEL}/{SOURCE}?sort=nonsense", headers={"accept": "text/html"})
    assert bad.status_code == 400 and "sort by one of" in bad.text


async def test_model_page_compares_its_sources(api, explored, bare_source) -> None:
    client, _ = api
    page = await client.get(f"/{MODEL}")
    assert page.status_code == 200
    text = page.text
    assert 'data-set="res-jb"' in text and 'data-set="res-bare"' in text
    assert f'href="/{MODEL}/{SOURCE}"' in text and f'href="/{MODEL}/{BARE}"' in text
    assert 'id="evals-by-layer"' in text and 'aria-label="L0 by layer"' in text
    assert "<polyline" in text or "<circle" in text
    assert (await client.get("/no-such-model")).status_code == 404


async def test_a_dead_feature_says_it_never_fired(api, bare_source) -> None:
    client, _ = api
    page = (await client.get(f"/{MODEL}/{BARE}/0")).text
    assert 'id="never-fired"' in page and "2,048 prompts" in page and "262,144 tokens" in page
    assert 'id="top-activations"' not in page


async def test_feature_page_groups_intervals_and_draws_axes(api) -> None:
    client, _ = api
    text = (await client.get(f"/{MODEL}/{SOURCE}/2")).text
    assert "Activations by interval" in text and 'class="interval" data-low="0.500"' in text
    assert 'class="label"' in text and ">tokens</text>" in text  # axis labels
    assert 'id="never-fired"' not in text
