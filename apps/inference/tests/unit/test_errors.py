"""Every bad input gets its status and a message naming the problem; the server keeps serving."""

import httpx
import pytest
from fastapi import FastAPI

from interpedia_inference.app import create_app
from interpedia_inference.settings import InferenceSettings

MODEL = "tiny-random"
STEER = {
    "prompt": "Hi",
    "model": MODEL,
    "types": ["STEERED", "DEFAULT"],
    "n_completion_tokens": 3,
    "temperature": 0,
    "seed": 1,
    "strength_multiplier": 1,
    "freq_penalty": 0,
    "steer_method": "SIMPLE_ADDITIVE",
    "normalize_steering": False,
}


def _feature(**kw: object) -> dict[str, object]:
    return {"model": MODEL, "source": "1-res-test", "index": 1, "strength": 5, **kw}


CASES = [
    # (path, body, status, words the detail must contain)
    (
        "/v1/activation/single",
        {"prompt": "word " * 100, "model": MODEL, "source": "1-res-test", "index": "1"},
        400,
        "limit is 64",
    ),
    (
        "/v1/activation/single",
        {"prompt": "hi", "model": "gpt-99", "source": "1-res-test", "index": "1"},
        400,
        "gpt-99",
    ),
    (
        "/v1/activation/single",
        {"prompt": "hi", "model": MODEL, "source": "9-res-nope", "index": "1"},
        404,
        "9-res-nope",
    ),
    (
        "/v1/activation/single",
        {"prompt": "hi", "model": MODEL, "source": "1-res-test", "index": "256"},
        404,
        "256",
    ),
    (
        "/v1/activation/single",
        {"prompt": "hi", "model": MODEL, "source": "1-res-test", "index": "abc"},
        400,
        "abc",
    ),
    ("/v1/activation/single", {"prompt": "hi", "model": MODEL}, 400, "source and index"),
    (
        "/v1/activation/single",
        {"prompt": "hi", "model": MODEL, "vector": [1.0, 2.0], "hook": "blocks.0.hook_resid_post"},
        400,
        "expected 64",
    ),
    (
        "/v1/activation/single",
        {"prompt": "hi", "model": MODEL, "vector": [1.0] * 64, "hook": "blocks.7.hook_resid_post"},
        404,
        "blocks.7",
    ),
    (
        "/v1/activation/all",
        {"prompt": "hi", "model": MODEL, "source_set": "res-nope"},
        404,
        "res-nope",
    ),
    (
        "/v1/activation/all",
        {
            "prompt": "hi",
            "model": MODEL,
            "source_set": "res-test",
            "selected_sources": ["5-res-test"],
        },
        404,
        "5-res-test",
    ),
    (
        "/v1/activation/all",
        {"prompt": "hi", "model": MODEL, "source_set": "res-test", "sort_by_token_indexes": [10]},
        400,
        "10",
    ),
    (
        "/v1/activation/topk-by-token",
        {"prompt": "hi", "model": MODEL, "source": "1-res-test", "top_k": 0},
        422,
        "top_k",
    ),
    (
        "/v1/activation/topk-by-token",
        {"prompt": "hi", "model": MODEL, "source": "1-res-test", "top_k": -3},
        422,
        "top_k",
    ),
    (
        "/v1/activation/source",
        {"prompts": ["hi"], "model": MODEL, "source": "3-nope"},
        404,
        "3-nope",
    ),
    ("/v1/steer/completion", {**STEER, "features": [_feature(strength=1e9)]}, 422, "strength"),
    ("/v1/steer/completion", {**STEER, "features": [_feature(index=999)]}, 404, "999"),
    ("/v1/steer/completion", {**STEER, "features": [_feature(source="4-res-x")]}, 404, "4-res-x"),
    (
        "/v1/steer/completion",
        {**STEER, "features": [_feature()], "n_completion_tokens": 41},
        422,
        "40",
    ),
    (
        "/v1/steer/completion",
        {**STEER, "features": [_feature()], "strength_multiplier": 1e12},
        422,
        "strength_multiplier",
    ),
    ("/v1/steer/completion", {**STEER}, 422, "exactly one of features or vectors"),
    (
        "/v1/steer/completion",
        {
            **STEER,
            "features": [_feature()],
            "vectors": [{"steering_vector": [1.0], "hook": "h", "strength": 1}],
        },
        422,
        "exactly one of features or vectors",
    ),
    # Bounds in the schema: these reached torch or a tensor index as 500s.
    ("/v1/steer/completion", {**STEER, "features": [_feature()], "seed": 2**64}, 422, "seed"),
    (
        "/v1/steer/completion",
        {**STEER, "features": [_feature()], "seed": -(2**63) - 1},
        422,
        "seed",
    ),
    ("/v1/steer/completion", {**STEER, "features": [_feature(index=2**31)]}, 422, "index"),
    (
        "/v1/steer/completion",
        {**STEER, "features": [_feature()], "n_completion_tokens": 257},
        422,
        "less than or equal to 256",
    ),
    (
        "/v1/steer/completion",
        {**STEER, "prompt": "word " * 100, "features": [_feature()]},
        400,
        "limit is 64",
    ),
    (
        "/v1/steer/completion",
        {
            **STEER,
            "vectors": [
                {"steering_vector": [0.0] * 64, "hook": "blocks.0.hook_resid_post", "strength": 1}
            ],
            "normalize_steering": True,
        },
        422,
        "zero",
    ),
    (
        "/v1/steer/completion",
        {
            **STEER,
            "vectors": [
                {"steering_vector": [1.0] * 64, "hook": "blocks.0.attn.hook_pattern", "strength": 1}
            ],
        },
        400,
        "hook_pattern",
    ),
    (
        "/v1/steer/completion",
        {**STEER, "features": [_feature()], "n_logprobs": 11},
        422,
        "n_logprobs",
    ),
    ("/v1/steer/completion-chat", {**STEER, "prompt": [], "features": [_feature()]}, 422, "prompt"),
    ("/v1/tokenize", {"model": "other", "text": "hi"}, 400, "other"),
    ("/v1/util/sae-vector", {"model": MODEL, "source": "1-res-test", "index": 300}, 404, "300"),
    (
        "/v1/util/sae-topk-by-decoder-cossim",
        {"model": MODEL, "source": "1-res-test", "num_results": 3},
        400,
        "feature or vector",
    ),
    # The model-reading paths (raw, attention, chat template).
    ("/v1/activation/raw", {"prompts": ["x"], "layers": [2]}, 400, "out of range"),
    ("/v1/activation/raw", {"prompts": ["x"], "hook_point": "hook_nope"}, 404, "hook_nope"),
    ("/v1/activation/raw", {"prompts": ["x"] * 17}, 422, "prompts"),
    ("/v1/activation/raw", {"prompts": ["word " * 80]}, 400, "token limit"),
    ("/v1/activation/raw", {"prompts": ["x"], "model": "gpt2"}, 400, "unknown model"),
    ("/v1/activation/raw", {"prompts": ["x"], "type": "mean"}, 422, "type"),
    # Positions bounded in the schema (non-negative, 32-bit) before any lookup.
    ("/v1/activation/raw", {"prompts": ["x"], "layers": [-1]}, 422, "layers"),
    ("/v1/activation/raw", {"prompts": ["x"], "layers": [2**31]}, 422, "layers"),
    (
        "/v1/activation/attention",
        {"prompt": "x", "model": MODEL, "layer": 0, "head": -1},
        422,
        "head",
    ),
    (
        "/v1/activation/attention",
        {"prompt": "x", "model": MODEL, "layer": 5, "head": 0},
        400,
        "layer 5",
    ),
    (
        "/v1/activation/attention",
        {"prompt": "x", "model": MODEL, "layer": 0, "head": 4},
        400,
        "head 4",
    ),
    ("/v1/apply-chat-template", {"messages": [{"content": "hi"}]}, 422, "role"),
    ("/v1/apply-chat-template", {"messages": []}, 422, "messages"),
    ("/v1/apply-chat-template", {"messages": "hello"}, 422, "messages"),
]


@pytest.mark.parametrize(("path", "body", "status", "words"), CASES)
async def test_bad_input(
    client: httpx.AsyncClient, path: str, body: dict, status: int, words: str
) -> None:
    r = await client.post(path, json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
async def test_non_finite_strength_is_422(client: httpx.AsyncClient, value: str) -> None:
    body = (
        '{"prompt": "hi", "model": "tiny-random", "types": ["STEERED"], "n_completion_tokens": 2, '
        '"features": [{"model": "tiny-random", "source": "1-res-test", "index": 1, "strength": '
        + value
        + "}]}"
    )
    r = await client.post(
        "/v1/steer/completion", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text


async def test_still_serves_after_bad_inputs(client: httpx.AsyncClient) -> None:
    for path, body, _, _ in CASES:
        await client.post(path, json=body)
    r = await client.post("/v1/tokenize", json={"model": MODEL, "text": "still fine"})
    assert r.status_code == 200
    r = await client.post("/v1/steer/completion", json={**STEER, "features": [_feature()]})
    assert r.status_code == 200
    assert (await client.get("/health")).json() == {"status": "ok"}


async def test_health_is_503_until_loaded_and_secret_is_checked() -> None:
    # A model id that cannot load: the app still starts, health stays 503, routes say loading.
    app: FastAPI = create_app(
        InferenceSettings(model_id="/nonexistent/folder", secret="s3cret", device="cpu")
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get("/health")
            assert r.status_code == 503 and r.json() == {"status": "loading"}
            body = {"model": MODEL, "text": "x"}
            assert (await client.post("/v1/tokenize", json=body)).status_code == 401
            wrong = await client.post("/v1/tokenize", json=body, headers={"X-SECRET-KEY": "nope"})
            assert wrong.status_code == 401
            right = await client.post("/v1/tokenize", json=body, headers={"X-SECRET-KEY": "s3cret"})
            assert right.status_code == 503


def test_settings_accept_neuronpedia_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_ID", "gpt2-small")
    monkeypatch.setenv("SECRET", "abc")
    monkeypatch.setenv("INTERPEDIA_INFERENCE_SAE_SOURCES", "/a,/b")
    monkeypatch.setenv("INTERPEDIA_INFERENCE_TOKEN_LIMIT", "99")
    settings = InferenceSettings()
    assert (settings.model_id, settings.secret, settings.sae_sources, settings.token_limit) == (
        "gpt2-small",
        "abc",
        ["/a", "/b"],
        99,
    )
    assert settings.port == 5002


@pytest.mark.parametrize("seed", [2**64 - 1, -(2**63)])
async def test_every_seed_the_schema_allows_is_served(client: httpx.AsyncClient, seed: int) -> None:
    """A seed ≥ 2^64 used to reach torch's generator as a 500 (and a 502 in the web API)."""
    body = {**STEER, "features": [_feature()], "seed": seed, "n_completion_tokens": 1}
    response = await client.post("/v1/steer/completion", json=body)
    assert response.status_code == 200, response.text


def test_the_spec_declares_the_limits_the_server_enforces() -> None:
    """Limits only the code knew (256 tokens, one kind of target) are in the schema, where
    clients and fuzzers find them."""
    schemas = create_app(InferenceSettings()).openapi()["components"]["schemas"]
    for name in ("SteerCompletionRequest", "SteerCompletionChatRequest"):
        steer = schemas[name]
        assert steer["properties"]["n_completion_tokens"]["maximum"] == 256
        assert [one["required"] for one in steer["oneOf"]] == [["features"], ["vectors"]]
