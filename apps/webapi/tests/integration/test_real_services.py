"""The web API against the real inference and autointerp services over HTTP on 127.0.0.1.

The inference service runs the packaged SmolLM2-135M with a random SAE at layer 6
(`6-res-it`); nothing is faked. These show that the web API and the services agree on
every call it makes, that their errors reach the caller with the status they gave, and
that steering streams token by token all the way to the caller.
"""

import asyncio
import json
import time

import httpx
import pytest
from conftest import (
    INFERENCE_MAX_COMPLETION_TOKENS,
    MODEL,
    SERVED_D_SAE,
    SERVED_MODEL,
    SERVED_SET,
    SERVED_SOURCE,
    in_process,
    service_settings,
)
from sqlalchemy import select

from interpedia_db.models import Explanation

pytestmark = pytest.mark.slow

FEATURE = {"modelId": SERVED_MODEL, "layer": SERVED_SOURCE, "index": "5"}


async def test_activation_new_matches_the_inference_service(real_api, real_services) -> None:
    client, _ = real_api
    body = {"feature": FEATURE, "customText": "The cat sat on the mat"}
    response = await client.post("/api/activation/new", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    async with httpx.AsyncClient(base_url=real_services["inference"]) as inference:
        direct = (
            await inference.post(
                "/v1/activation/single",
                json={
                    "prompt": body["customText"],
                    "model": SERVED_MODEL,
                    "source": SERVED_SOURCE,
                    "index": 5,
                },
                headers={"x-secret-key": "inference-secret-for-tests"},
            )
        ).json()
    assert data["tokens"] == direct["tokens"]
    assert data["values"] == pytest.approx(direct["activation"]["values"])
    assert data["maxValueTokenIndex"] == direct["activation"]["max_value_index"]
    many = await client.post(
        "/api/activation/new", json=body | {"customText": ["a cat", "The cat sat on the mat"]}
    )
    assert many.status_code == 200
    assert many.json()[1]["values"] == pytest.approx(data["values"], rel=1e-4)  # batched


async def test_activation_source_search_all_and_tokenize(real_api) -> None:
    client, _ = real_api
    source = await client.post(
        "/api/activation/source",
        json={"modelId": SERVED_MODEL, "source": SERVED_SOURCE, "customText": "a cat"},
    )
    assert source.status_code == 200, source.text
    (result,) = source.json()["results"]
    assert result["tokens"][-1] == " cat" and result["activeFeatures"]
    every = await client.post(
        "/api/search-all",
        json={"modelId": SERVED_MODEL, "sourceSet": SERVED_SET, "text": "a cat", "numResults": 5},
    )
    assert every.status_code == 200, every.text
    found = every.json()
    assert 1 <= len(found["result"]) <= 5 and found["tokens"][-1] == " cat"
    assert {r["layer"] for r in found["result"]} == {SERVED_SOURCE}
    assert found["result"][0]["maxValue"] >= found["result"][-1]["maxValue"]
    tokens = await client.post("/api/tokenize", json={"model": SERVED_MODEL, "text": "a cat"})
    assert tokens.status_code == 200
    assert tokens.json()["token_strings"] == ["a", " cat"]


async def test_topk_by_token_has_neuronpedias_fields(real_api) -> None:
    client, _ = real_api
    body = {"modelId": SERVED_MODEL, "source": SERVED_SOURCE, "text": "the cat sat"}
    response = await client.post("/api/search-topk-by-token", json=body | {"densityThreshold": 0})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["source"] == SERVED_SOURCE
    assert [r["position"] for r in data["results"]] == [1, 2, 3]  # BOS left out
    assert [r["token"] for r in data["results"]] == ["the", " cat", " sat"]
    top = data["results"][0]["topFeatures"]
    assert len(top) == 5 and top[0]["specificity"] >= top[-1]["specificity"]
    assert top[0]["feature"]["index"] == str(top[0]["featureIndex"])
    # With a density threshold only features firing on at most that fraction of tokens stay
    # (the export's features fire on 0.1% to 1%); inference is asked for more candidates
    # than are returned, so each token still gets its 5.
    sparse = await client.post("/api/search-topk-by-token", json=body | {"densityThreshold": 0.005})
    kept = [f for r in sparse.json()["results"] for f in r["topFeatures"]]
    assert all(0 < f["feature"]["frac_nonzero"] <= 0.005 for f in kept)
    assert [len(r["topFeatures"]) for r in sparse.json()["results"]] == [5, 5, 5]
    batch = await client.post(
        "/api/search-topk-by-token", json=body | {"text": ["the cat", "a dog ran"]}
    )
    assert [len(r["results"]) for r in batch.json()["results"]] == [2, 3]


async def test_the_services_errors_keep_their_status_and_message(real_api) -> None:
    client, _ = real_api
    # 404: the database knows feature SERVED_D_SAE + 1; the served SAE ends before it.
    beyond = FEATURE | {"index": str(SERVED_D_SAE + 1)}
    response = await client.post("/api/activation/new", json={"feature": beyond, "customText": "x"})
    assert response.status_code == 404
    assert response.json()["detail"] == (
        f"feature {SERVED_D_SAE + 1} is outside source {SERVED_SOURCE} (0..{SERVED_D_SAE - 1})"
    )
    # 400: more tokens than the inference service's token limit
    long_text = "word " * 300
    response = await client.post(
        "/api/activation/new", json={"feature": FEATURE, "customText": long_text}
    )
    assert response.status_code == 400
    assert "the token limit is 128" in response.json()["detail"]
    # 422: more completion tokens than the inference service allows
    steer = {
        "modelId": SERVED_MODEL,
        "prompt": "Once upon a time",
        "features": [FEATURE | {"strength": 5}],
        "n_tokens": INFERENCE_MAX_COMPLETION_TOKENS + 10,
    }
    response = await client.post("/api/steer", json=steer)
    assert response.status_code == 422
    assert "above this server's cap of 48" in response.json()["detail"]
    streamed = await client.post("/api/steer", json=steer | {"stream": True})
    assert streamed.status_code == 422  # refused before the stream starts


async def test_a_wrong_secret_or_a_dead_service_is_a_clear_502(
    seeded, real_services, db_sessionmaker, tmp_path
) -> None:
    settings = service_settings(real_services) | {"inference_secret": "not-the-secret"}
    async with in_process(db_sessionmaker, tmp_path, **settings) as (client, _):
        response = await client.post("/api/tokenize", json={"model": SERVED_MODEL, "text": "a"})
    assert response.status_code == 502
    assert "INTERPEDIA_WEBAPI_INFERENCE_SECRET" in response.json()["detail"]
    dead = service_settings(real_services) | {"inference_url": "http://127.0.0.1:9"}
    async with in_process(db_sessionmaker, tmp_path, **dead) as (client, _):
        response = await client.post("/api/tokenize", json={"model": SERVED_MODEL, "text": "a"})
        page = await client.get("/steer")
    assert response.status_code == 502
    assert "cannot reach the inference service" in response.json()["detail"]
    assert (
        'id="no-served-model"' in page.text
        and "<option" not in page.text.split("steer-model")[1][:200]
    )


async def test_steer_caches_and_the_chat_goes_through(real_api) -> None:
    client, _ = real_api
    body = {
        "modelId": SERVED_MODEL,
        "prompt": "Once upon a time",
        "features": [FEATURE | {"strength": 40}],
        "n_tokens": 6,
        "temperature": 0,
    }
    first = await client.post("/api/steer", json=body)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["cached"] is False and answer["STEERED"].startswith("Once upon a time")
    assert answer["DEFAULT"].startswith("Once upon a time")
    second = (await client.post("/api/steer", json=body)).json()
    assert second["cached"] is True and second["STEERED"] == answer["STEERED"]
    chat = await client.post(
        "/api/steer-chat",
        json={
            "modelId": SERVED_MODEL,
            "features": [FEATURE | {"strength": 5}],
            "defaultChatMessages": [{"role": "user", "content": "hi"}],
            "steeredChatMessages": [{"role": "user", "content": "hi"}],
            "n_tokens": 4,
        },
    )
    assert chat.status_code == 200, chat.text
    assert "<|im_start|>user" in chat.json()["STEERED"]


def test_steer_streams_token_by_token_to_the_caller(live_server) -> None:
    """Events leave the web API as the model writes them: spread over the generation, not
    one burst at its end (the arrival times are taken here, at the caller)."""
    n_tokens = 16
    body = {
        "modelId": SERVED_MODEL,
        "prompt": "The history of the city begins",
        "features": [FEATURE | {"strength": 20}],
        "n_tokens": n_tokens,
        "seed": int(time.time()),  # never cached
        "stream": True,
    }
    started = time.monotonic()
    arrivals: list[float] = []
    events: list[dict] = []
    with httpx.stream("POST", f"{live_server.url}/api/steer", json=body, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                arrivals.append(time.monotonic())
    tokens = [e for e in events if not e.get("done")]
    assert len(tokens) == n_tokens and events[-1]["done"] and events[-1]["cached"] is False
    lengths = [len(e["STEERED"]) for e in tokens]
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1]
    assert events[-1]["STEERED"] == tokens[-1]["STEERED"]
    whole = arrivals[-1] - started
    # Token events arrive through most of the generation; a burst at the end spans ~0 s.
    assert arrivals[n_tokens - 1] - arrivals[0] > 0.5 * whole, (arrivals, started)


async def test_generated_and_scored_explanations_come_from_autointerp(real_api, seeded) -> None:
    client, _ = real_api
    alice = {"x-api-key": seeded["alice"]}
    feature = {"modelId": SERVED_MODEL, "layer": SERVED_SOURCE, "index": 7}
    made = await client.post("/api/explanation/generate", headers=alice, json=feature)
    assert made.status_code == 200, made.text
    explanation = made.json()["explanation"]
    assert explanation["description"].strip()
    # No LLM here: the offline explainer wrote it, and the record says so.
    assert explanation["typeName"] == "interpedia-offline-v2"
    assert explanation["explanationModelName"] == "token-statistics"
    # Naming an LLM explainer is honoured: without an LLM that is a clear 400, not offline text.
    refused = await client.post(
        "/api/explanation/generate",
        headers=alice,
        json=feature | {"explanationType": "oai_token-act-pair"},
    )
    assert refused.status_code == 400 and "LLM" in refused.json()["detail"]
    unknown = await client.post(
        "/api/explanation/generate", headers=alice, json=feature | {"explanationType": "nope"}
    )
    assert unknown.status_code == 400 and "unknown explainer" in unknown.json()["detail"]

    scored = await client.post(
        "/api/explanation/score",
        headers=alice,
        json={"explanationId": explanation["id"], "scorerType": "eleuther_embedding"},
    )
    assert scored.status_code == 200, scored.text
    score = scored.json()["score"]
    assert score["explanationScoreTypeName"] == "embedding"
    assert 0.0 <= score["value"] <= 1.0
    for scorer, detail in (("recall_alt", "not available"), ("eleuther_fuzz", "LLM")):
        answer = await client.post(
            "/api/explanation/score",
            headers=alice,
            json={"explanationId": explanation["id"], "scorerType": scorer},
        )
        assert answer.status_code == 400 and detail in answer.json()["detail"], answer.text
    dashboard = (await client.get(f"/api/feature/{SERVED_MODEL}/{SERVED_SOURCE}/7")).json()
    mine = next(e for e in dashboard["explanations"] if e["id"] == explanation["id"])
    assert [s["value"] for s in mine["scores"]] == [pytest.approx(score["value"])]


async def test_semantic_and_hybrid_search_through_autointerp(real_api, locally_embedded) -> None:
    client, _ = real_api
    semantic = await client.post(
        "/api/explanation/search-model",
        json={"modelId": SERVED_MODEL, "query": "kittens and felines", "mode": "semantic"},
    )
    assert semantic.status_code == 200, semantic.text
    results = semantic.json()["results"]
    assert results and all(r["modelId"] == SERVED_MODEL for r in results)
    # the export's explanations alternate "mentions of cats #i" / "dogs running home #i"
    assert all("cats" in r["description"] for r in results[:5])
    assert results[0]["cosine_similarity"] >= results[-1]["cosine_similarity"]
    hybrid = await client.post(
        "/api/explanation/search-all", json={"query": "cats", "mode": "hybrid", "limit": 5}
    )
    assert hybrid.status_code == 200
    # search-all spans every suite's models in the shared database: other suites' features
    # are explained as "the words "cat" and …", so every hit is about cats, in any form
    assert all("cat" in r["description"] for r in hybrid.json()["results"])


@pytest.mark.parametrize("mode", ["semantic", "hybrid"])
async def test_explanation_search_pages_lead_to_valid_pages(
    real_api, locally_embedded, db_sessionmaker, mode
) -> None:
    """Offset 80 asked autointerp for limit + 1 past its 100 and answered 400; every
    `nextOffset` must lead to a page, down to the last, each result once."""
    client, _ = real_api
    async with db_sessionmaker() as session:
        query = select(Explanation.id).where(Explanation.model_id == SERVED_MODEL)
        ids = set((await session.execute(query)).scalars())
    assert len(ids) > 200  # deeper than one autointerp call
    search = {"modelId": SERVED_MODEL, "query": "cats", "mode": mode}
    deep = await client.post("/api/explanation/search", json=search | {"offset": 79, "limit": 100})
    assert deep.status_code == 200, deep.text
    assert len(deep.json()["results"]) == 100
    seen: list[int] = []
    page = {"hasMore": True, "nextOffset": 0}
    while page["hasMore"]:  # pages of 100: hybrid fuses every one at the same depth
        response = await client.post(
            "/api/explanation/search", json=search | {"offset": page["nextOffset"], "limit": 100}
        )
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [int(r["id"]) for r in page["results"]]
    assert len(seen) == len(set(seen)) and set(seen) == ids
    edge = await client.post("/api/explanation/search", json=search | {"offset": 10_000})
    assert edge.status_code == 200, edge.text
    assert edge.json()["hasMore"] is False and edge.json()["results"] == []


async def test_pickers_offer_only_served_models(real_api) -> None:
    client, _ = real_api
    steer = await client.get(f"/steer?model={MODEL}&source=6-res-jb&index=4")
    picker = steer.text.split('id="steer-model"')[1].split("</select>")[0]
    assert f'value="{SERVED_MODEL}" selected' in picker
    assert MODEL not in picker  # in the database, but no inference service serves it
    search = await client.get("/search")
    inference_picker = search.text.split('id="inference-set"')[1].split("</select>")[0]
    assert f'value="{SERVED_MODEL}|{SERVED_SET}"' in inference_picker
    assert MODEL not in inference_picker
    explanation_picker = search.text.split('id="search-model"')[1].split("</select>")[0]
    assert MODEL in explanation_picker  # searching explanations needs no inference


async def test_slow_generations_hold_no_database_connection(
    seeded, real_services, database_url, tmp_path
) -> None:
    """With one pooled connection and a 0.5 s wait for it, concurrent 24-token steers and
    feature reads all succeed: no request holds the connection while the model writes."""
    from interpedia_db.connect import create_engine, create_sessionmaker

    engine = create_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.5)
    steer = {
        "modelId": SERVED_MODEL,
        "prompt": "Once upon a time",
        "features": [FEATURE | {"strength": 10}],
        "n_tokens": 24,
    }
    try:
        async with in_process(
            create_sessionmaker(engine), tmp_path, **service_settings(real_services)
        ) as (client, _):
            answers = await asyncio.gather(
                *(
                    client.post("/api/steer", json=steer | {"seed": int(time.time()) + i})
                    for i in range(3)
                ),
                *(client.get(f"/api/feature/{SERVED_MODEL}/{SERVED_SOURCE}/{i}") for i in range(3)),
            )
    finally:
        await engine.dispose()
    assert [a.status_code for a in answers] == [200] * 6, [a.text[:200] for a in answers]
