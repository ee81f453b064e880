"""Both of Neuronpedia's wire dialects on every inference path: a camelCase request gets the
same answer as its snake_case twin, with camelCase field names (streams too); snake_case and
one-word bodies keep snake_case answers."""

import json
from typing import Any

import httpx
import pytest
from pydantic.alias_generators import to_camel

from interpedia_core.dialect import body_dialect_is_camel

MODEL = "tiny-random"
PROMPT = "The quick brown fox"
FEATURE = {"model": MODEL, "source": "1-res-test", "index": 3, "strength": 4.0}

# Snake_case bodies as Neuronpedia's published client sends them, one per path.
SNAKE_BODIES: dict[str, dict[str, Any]] = {
    "/v1/activation/single": {
        "prompt": PROMPT,
        "model": MODEL,
        "source": "1-res-test",
        "index": "3",
    },
    "/v1/activation/single-batch": {
        "prompts": [PROMPT, "Hello"],
        "model": MODEL,
        "source": "1-res-test",
        "index": 3,
    },
    "/v1/activation/all": {
        "prompt": PROMPT,
        "model": MODEL,
        "source_set": "res-test",
        "selected_sources": ["1-res-test"],
        "sort_by_token_indexes": [2],
        "ignore_bos": True,
        "num_results": 5,
    },
    "/v1/activation/all-batch": {
        "prompts": [PROMPT],
        "model": MODEL,
        "source_set": "res-test",
        "selected_sources": [],
        "ignore_bos": False,
        "num_results": 3,
    },
    "/v1/activation/topk-by-token": {
        "prompt": PROMPT,
        "model": MODEL,
        "source": "0-res-test",
        "top_k": 3,
        "ignore_bos": True,
    },
    "/v1/activation/topk-by-token-batch": {
        "prompts": [PROMPT],
        "model": MODEL,
        "source": "0-res-test",
        "top_k": 2,
    },
    "/v1/activation/source": {"prompts": [PROMPT], "model": MODEL, "source": "0-res-test"},
    "/v1/tokenize": {"text": PROMPT, "model": MODEL, "prepend_bos": True},
    "/v1/util/sae-vector": {"model": MODEL, "source": "1-res-test", "index": 3},
    "/v1/util/sae-topk-by-decoder-cossim": {
        "model": MODEL,
        "source": "1-res-test",
        "feature": {"model": MODEL, "source": "1-res-test", "index": 3},
        "num_results": 4,
    },
    "/v1/steer/completion": {
        "prompt": PROMPT,
        "model": MODEL,
        "steer_method": "SIMPLE_ADDITIVE",
        "types": ["STEERED", "DEFAULT"],
        "features": [FEATURE],
        "n_completion_tokens": 3,
        "n_logprobs": 2,
        "strength_multiplier": 1.5,
    },
    "/v1/steer/completion-chat": {
        "prompt": [{"role": "user", "content": "Hi there"}],
        "model": MODEL,
        "steer_method": "ORTHOGONAL_DECOMP",
        "features": [FEATURE],
        "n_completion_tokens": 3,
        "n_logprobs": 1,
        "steer_special_tokens": True,
    },
}


def camelize(value: Any) -> Any:
    """Every key to camelCase, except keys that are data (digits: feature indices)."""
    if isinstance(value, dict):
        return {(k if k.isdigit() else to_camel(k)): camelize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camelize(v) for v in value]
    return value


def keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys(v)}
    return set()


@pytest.mark.parametrize("path", sorted(SNAKE_BODIES))
async def test_camel_request_gets_the_same_answer_in_camel_case(
    client: httpx.AsyncClient, path: str
) -> None:
    snake = await client.post(path, json=SNAKE_BODIES[path])
    body = camelize(SNAKE_BODIES[path])
    # A body of one-word keys doesn't show its dialect: the header says it.
    headers = {"X-Wire-Dialect": "camel"} if body_dialect_is_camel(body) is None else {}
    camel = await client.post(path, json=body, headers=headers)
    assert snake.status_code == 200 == camel.status_code, (snake.text, camel.text)
    assert camel.json() == camelize(snake.json())
    multi_word = {k for k in keys(snake.json()) if "_" in k}
    # These two have one multi-word field each, camelCase in both dialects.
    if path not in ("/v1/activation/source", "/v1/util/sae-vector"):
        assert multi_word, "a path without a multi-word field proves nothing here"
    assert not multi_word & keys(camel.json())


async def test_field_names_follow_neuronpedia_camel_case_spec(client: httpx.AsyncClient) -> None:
    """Names from Neuronpedia's current openapi.json (apps/inference, August 2026)."""
    single = (
        await client.post(
            "/v1/activation/single",
            json=SNAKE_BODIES["/v1/activation/single"],
            headers={"X-Wire-Dialect": "camel"},
        )
    ).json()
    assert set(single) == {"activation", "tokens", "tokensIsSpecial"}
    assert {"values", "maxValue", "maxValueIndex"} <= set(single["activation"])
    top = (
        await client.post(
            "/v1/activation/topk-by-token",
            json={"prompt": PROMPT, "model": MODEL, "source": "0-res-test", "topK": 2},
        )
    ).json()
    assert set(top["results"][0]) == {"tokenPosition", "token", "isSpecial", "topFeatures"}
    assert set(top["results"][0]["topFeatures"][0]) == {"featureIndex", "activationValue"}
    assert len(top["results"][0]["topFeatures"]) == 2  # topK was read, not ignored
    chat = (
        await client.post(
            "/v1/steer/completion-chat", json=camelize(SNAKE_BODIES["/v1/steer/completion-chat"])
        )
    ).json()
    assert set(chat["outputs"][0]) >= {"chatTemplate", "raw", "type", "logprobs"}
    assert "topLogprobs" in chat["outputs"][0]["logprobs"][0]


async def test_undecided_requests_get_the_default_dialect(
    client: httpx.AsyncClient, camel_default_client: httpx.AsyncClient
) -> None:
    one_word = SNAKE_BODIES["/v1/activation/single-batch"]
    ambiguous = await client.post("/v1/activation/single-batch", json=one_word)
    assert "max_value_index" in ambiguous.json()["results"][0]["activation"]
    capabilities = (await client.get("/v1/capabilities")).json()
    assert "token_limit" in capabilities
    snake_header = await client.post(
        "/v1/activation/topk-by-token",
        json={"prompt": PROMPT, "model": MODEL, "source": "0-res-test", "topK": 2},
        headers={"X-Wire-Dialect": "snake"},
    )
    assert "token_position" in snake_header.json()["results"][0]  # the header wins
    camel = camel_default_client
    answer = await camel.post("/v1/activation/single-batch", json=one_word)
    assert "maxValueIndex" in answer.json()["results"][0]["activation"]
    assert "tokenLimit" in (await camel.get("/v1/capabilities")).json()
    snake = await camel.post("/v1/tokenize", json=SNAKE_BODIES["/v1/tokenize"])
    assert "token_strings" in snake.json()  # snake keys still decide
    mixed = await client.post(
        "/v1/activation/topk-by-token",
        json={
            "prompt": PROMPT,
            "model": MODEL,
            "source": "0-res-test",
            "top_k": 2,
            "ignoreBos": True,
        },
    )
    assert "tokenPosition" in mixed.json()["results"][0]  # any camelCase key decides


async def test_stream_answers_in_the_request_dialect(client: httpx.AsyncClient) -> None:
    body = {**camelize(SNAKE_BODIES["/v1/steer/completion"]), "stream": True}
    async with client.stream("POST", "/v1/steer/completion", json=body) as response:
        assert response.status_code == 200
        events = [
            json.loads(line.removeprefix("data: "))
            async for line in response.aiter_lines()
            if line.startswith("data: ")
        ]
    final = events[-1]
    assert "topLogprobs" in final["outputs"][0]["logprobs"][0]
    assert not {k for k in keys(events) if "_" in k}


async def test_validation_errors_name_the_field_in_either_dialect(
    client: httpx.AsyncClient,
) -> None:
    bad = camelize(SNAKE_BODIES["/v1/steer/completion"]) | {"nCompletionTokens": 0}
    response = await client.post("/v1/steer/completion", json=bad)
    assert response.status_code == 422
    assert "nCompletionTokens" in response.json()["detail"]
