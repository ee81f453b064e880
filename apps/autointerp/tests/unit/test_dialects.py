"""Both of Neuronpedia's wire dialects on the autointerp paths: camelCase in, camelCase out;
snake_case in, snake_case out."""

from fastapi.testclient import TestClient

from interpedia_autointerp.app import create_app
from interpedia_autointerp.embeddings import EmbedderRegistry
from interpedia_autointerp.settings import AutointerpSettings


def _activations(records) -> list[dict[str, object]]:
    return [{"tokens": r.tokens, "values": r.values} for r in records]


def test_explain_answers_in_the_request_dialect(offline_client: TestClient, cat_records) -> None:
    acts = _activations(cat_records)
    snake = offline_client.post(
        "/v1/explain/activations", json={"activations": acts, "logit_tokens": ["Ġmeow"]}
    )
    camel = offline_client.post(
        "/v1/explain/activations", json={"activations": acts, "logitTokens": ["Ġmeow"]}
    )
    assert snake.status_code == 200 == camel.status_code, camel.text
    assert snake.json()["type_name"] == camel.json()["typeName"] == "interpedia-offline-v2"
    assert "type_name" not in camel.json() and "typeName" not in snake.json()
    assert snake.json()["description"] == camel.json()["description"]
    assert camel.json()["explanationModelName"] == snake.json()["explanation_model_name"]


def test_score_embedding_reads_camel_case_fields(
    offline_client: TestClient, cat_records, other_records
) -> None:
    body = {"activations": _activations(cat_records + other_records), "explanation": "cats"}
    unknown = offline_client.post("/v1/score/embedding", json={**body, "embeddingModel": "nope"})
    assert unknown.status_code == 400 and "nope" in unknown.json()["detail"]  # read, not ignored
    camel = offline_client.post(
        "/v1/score/embedding", json={**body, "embeddingModel": "all-MiniLM-L6-v2"}
    )
    snake = offline_client.post(
        "/v1/score/embedding", json={**body, "embedding_model": "all-MiniLM-L6-v2"}
    )
    assert camel.json() == snake.json() and camel.json()["score"] > 0.9


def test_undecided_requests_follow_the_setting(
    embedders: EmbedderRegistry, wait_ready, cat_records
) -> None:
    settings = AutointerpSettings(database_enabled=False, wire_dialect="camel")
    with TestClient(create_app(settings, embedders=embedders)) as camel_default:
        wait_ready(camel_default)
        models = camel_default.get("/v1/embedding-models").json()["models"]
        assert models == [{"name": "all-MiniLM-L6-v2", "dimensions": 384, "default": True}]
        embedded = camel_default.post("/v1/embed", json={"texts": ["cat"]}).json()
        assert "embeddingModel" in embedded
        told = camel_default.post(
            "/v1/embed", json={"texts": ["cat"]}, headers={"X-Wire-Dialect": "snake"}
        )
        assert "embedding_model" in told.json()
