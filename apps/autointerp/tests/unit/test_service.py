"""The HTTP service without a database: Neuronpedia's paths, the richer ones, error answers."""

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from interpedia_autointerp.app import create_app
from interpedia_autointerp.embeddings import EmbedderRegistry
from interpedia_autointerp.examples import ActivationRecord
from interpedia_autointerp.settings import AutointerpSettings


def _activations(records: list[ActivationRecord]) -> list[dict[str, Any]]:
    return [{"tokens": r.tokens, "values": r.values} for r in records]


@pytest.fixture
def llm_client(embedders: EmbedderRegistry, fake_llm, wait_ready) -> Iterator[TestClient]:
    settings = AutointerpSettings(
        database_enabled=False, llm_base_url=fake_llm.url, llm_model="fake", llm_max_retries=0
    )
    with TestClient(create_app(settings, embedders=embedders)) as client:
        wait_ready(client)
        yield client


def test_health_is_503_until_loaded(embedders: EmbedderRegistry, monkeypatch, wait_ready) -> None:
    loaded = threading.Event()

    def slow_embedders(*args: object) -> EmbedderRegistry:  # a model still being read
        loaded.wait(timeout=30)
        return embedders

    monkeypatch.setattr("interpedia_autointerp.app.build_embedders", slow_embedders)
    app = create_app(AutointerpSettings(database_enabled=False))
    with TestClient(app) as client:
        first = client.get("/health")
        assert first.status_code == 503 and first.json() == {"status": "loading"}
        embed = client.post("/v1/embed", json={"texts": ["x"]})
        assert embed.status_code == 503 and "retry" in embed.json()["detail"]
        loaded.set()
        wait_ready(client)
        assert client.get("/health").json() == {"status": "ok"}
        assert client.post("/v1/embed", json={"texts": ["x"]}).status_code == 200


def test_keyed_requests_share_one_client_per_api_root_closed_at_shutdown(
    embedders: EmbedderRegistry, fake_llm, cat_records, wait_ready
) -> None:
    """Neuronpedia's paths bring an OpenRouter key per request: each is sent with its own
    key through the one client of that API root, which the service closes when it stops."""
    fake_llm.reply = lambda messages: "Explanation: cats"
    settings = AutointerpSettings(
        database_enabled=False, openrouter_base_url=fake_llm.url, llm_max_retries=0
    )
    app = create_app(settings, embedders=embedders)
    with TestClient(app) as client:
        wait_ready(client)
        for key in ("key-one", "key-two", "key-one"):
            response = client.post(
                "/v1/explain/default",
                json={
                    "activations": _activations(cat_records),
                    "openrouter_key": key,
                    "model": "m",
                },
            )
            assert response.status_code == 200, response.text
        clients = app.state.openai_clients
        assert clients.roots() == [fake_llm.url]
        (shared,) = clients._clients.values()
    assert fake_llm.authorizations == ["Bearer key-one", "Bearer key-two", "Bearer key-one"]
    assert shared.is_closed()


def test_explain_default_offline(offline_client: TestClient, cat_records, other_records) -> None:
    response = offline_client.post(
        "/v1/explain/default",
        json={"activations": _activations(cat_records + other_records), "model": "x"},
    )
    assert response.status_code == 200, response.text
    assert "cat" in response.json()["explanation"]


def test_explain_activations_says_how_it_was_made(offline_client, cat_records) -> None:
    response = offline_client.post(
        "/v1/explain/activations",
        json={"activations": _activations(cat_records), "logit_tokens": ["Ġmeow"]},
    )
    assert response.json()["type_name"] == "interpedia-offline-v2"
    llm = offline_client.post(
        "/v1/explain/activations", json={"activations": _activations(cat_records), "method": "llm"}
    )
    assert llm.status_code == 400 and "LLM" in llm.json()["detail"]


@pytest.mark.parametrize(
    ("activations", "status", "detail"),
    [
        ([], 422, "activations: List should have at least 1 item"),
        ([{"tokens": [], "values": []}], 422, "tokens: List should have at least 1 item"),
        ([{"tokens": ["a", "b"], "values": [0, 0]}], 400, "above zero"),
        ([{"tokens": ["a", "b"], "values": [1]}], 400, "2 tokens but 1 values"),
    ],
)
def test_explain_refuses_bad_activations(offline_client, activations, status, detail) -> None:
    """What the schema can say is a 422 naming the field; the rest a 400 that explains."""
    response = offline_client.post("/v1/explain/default", json={"activations": activations})
    assert response.status_code == status
    assert detail in response.json()["detail"]


def test_score_embedding(offline_client, cat_records, other_records) -> None:
    body = {"activations": _activations(cat_records + other_records), "explanation": "cats"}
    response = offline_client.post("/v1/score/embedding", json=body)
    assert response.status_code == 200
    assert response.json()["score"] > 0.9
    assert len(response.json()["breakdown"]) == 16
    empty = offline_client.post("/v1/score/embedding", json={**body, "explanation": " "})
    assert empty.status_code == 422 and "explanation" in empty.json()["detail"]
    unknown = offline_client.post("/v1/score/embedding", json={**body, "embedding_model": "nope"})
    assert unknown.status_code == 400 and "nope" in unknown.json()["detail"]


def test_fuzz_detection_needs_an_llm(offline_client, cat_records) -> None:
    response = offline_client.post(
        "/v1/score/fuzz-detection",
        json={"activations": _activations(cat_records), "explanation": "cats", "type": "FUZZ"},
    )
    assert response.status_code == 400
    assert "INTERPEDIA_AUTOINTERP_LLM_MODEL" in response.json()["detail"]


def test_routes_needing_a_database_say_so(offline_client) -> None:
    response = offline_client.post("/v1/search/explanations", json={"query": "cat"})
    assert response.status_code == 503
    assert "without a database" in response.json()["detail"]


def test_embed(offline_client) -> None:
    response = offline_client.post("/v1/embed", json={"texts": ["cat", "dog"]})
    body = response.json()
    assert body["dimensions"] == 384 and len(body["embeddings"]) == 2
    models = offline_client.get("/v1/embedding-models").json()["models"]
    assert models == [{"name": "all-MiniLM-L6-v2", "dimensions": 384, "default": True}]


def test_llm_paths(llm_client, fake_llm, cat_records, other_records) -> None:
    fake_llm.reply = lambda messages: "Explanation: cats and kittens"
    explained = llm_client.post(
        "/v1/explain/default", json={"activations": _activations(cat_records)}
    )
    assert explained.json() == {"explanation": "cats and kittens"}

    fake_llm.reply = lambda messages: str([1] * messages[-1]["content"].count("Example "))
    scored = llm_client.post(
        "/v1/score/fuzz-detection",
        json={
            "activations": _activations(cat_records + other_records),
            "explanation": "cats",
            "type": "DETECTION",
            "openrouter_key": "ignored",
            "model": "ignored",
        },
    )
    assert scored.status_code == 200, scored.text
    assert scored.json()["score"] == pytest.approx(0.5)
    assert {"ground_truth", "prediction", "str_tokens"} <= set(scored.json()["breakdown"][0])

    fake_llm.reply = lambda messages: "no idea"
    garbage = llm_client.post(
        "/v1/score/simulation",
        json={"activations": _activations(cat_records), "explanation": "cats"},
    )
    assert garbage.status_code == 502
    assert "list of" in garbage.json()["detail"]

    fake_llm.status = 503
    down = llm_client.post("/v1/explain/default", json={"activations": _activations(cat_records)})
    assert down.status_code == 502 and "503" in down.json()["detail"]


def test_with_a_secret_requests_without_it_are_refused(embedders, wait_ready) -> None:
    settings = AutointerpSettings(database_enabled=False, shared_secret="s3cret")
    with TestClient(create_app(settings, embedders=embedders)) as client:
        wait_ready(client)
        body = {"texts": ["cats"]}
        assert client.post("/v1/embed", json=body).status_code == 401
        wrong = client.post("/v1/embed", json=body, headers={"X-SECRET-KEY": "nope"})
        assert wrong.status_code == 401
        right = client.post("/v1/embed", json=body, headers={"X-SECRET-KEY": "s3cret"})
        assert right.status_code == 200


def test_the_spec_declares_what_the_scorers_need(offline_client) -> None:
    """The LLM scorer's 400 (no LLM) and the non-blank explanation are in the schema."""
    spec = offline_client.get("/openapi.json").json()
    answers = spec["paths"]["/v1/score/fuzz-detection"]["post"]["responses"]
    assert "INTERPEDIA_AUTOINTERP_LLM_MODEL" in answers["400"]["description"]
    explanation = spec["components"]["schemas"]["ScoreFuzzDetectionRequest"]["properties"]
    assert explanation["explanation"]["minLength"] == 1
