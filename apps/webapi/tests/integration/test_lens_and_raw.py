"""The lens, raw-activation export and attention routes of the web API against the real
inference service on 127.0.0.1 (the packaged SmolLM2-135M): what they answer equals what
the service computes, frame by frame and value by value."""

import io
import json

import httpx
import numpy as np
import pytest
from conftest import INFERENCE_SECRET, SERVED_MODEL

pytestmark = pytest.mark.slow

PROMPT = "The capital of France is"


async def _frames(client: httpx.AsyncClient, body: dict) -> list[dict]:
    async with client.stream("POST", "/api/lens/prompt", json=body) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) async for line in response.aiter_lines() if line.strip()]


async def test_lens_streams_the_inference_services_frames(real_api, real_services) -> None:
    client, _ = real_api
    body = {"modelId": SERVED_MODEL, "prompt": PROMPT, "topN": 3, "layers": [3, 10]}
    frames = await _frames(client, body)
    kinds = [f["kind"] for f in frames]
    assert kinds[:2] == ["meta", "prompt"] and kinds[-1] == "done"
    assert frames[0]["layers_by_type"] == {"LOGIT_LENS": [3, 10, 29]}
    tokens = [f for f in frames if f["kind"] == "token"]
    assert len(tokens) == frames[0]["prompt_len"] == len(frames[1]["tokens"])
    async with httpx.AsyncClient(
        base_url=real_services["inference"], headers={"x-secret-key": INFERENCE_SECRET}
    ) as inference:
        direct = await inference.post(
            "/v1/lens/prompt",
            json={
                "model": SERVED_MODEL,
                "prompt": PROMPT,
                "top_n": 3,
                "layers": [3, 10],
                "filter_non_word_tokens": True,
                "stream": False,
            },
        )
    assert direct.status_code == 200, direct.text
    for mine, theirs in zip(tokens, direct.json()["tokens"], strict=True):
        assert mine["token"] == theirs["token"] and mine["position"] == theirs["position"]
        (result,) = mine["results"]
        assert result["top_tokens"] == theirs["results"][0]["top_tokens"]
        expected_rows = theirs["results"][0]["top_probs"]
        for row, expected in zip(result["top_probs"], expected_rows, strict=True):
            assert row == pytest.approx(expected, abs=1e-6)


async def test_lens_chat_generation_and_steering_reach_the_service(real_api) -> None:
    client, _ = real_api
    chat = [{"role": "user", "content": "Name a colour."}]
    body = {"modelId": SERVED_MODEL, "chat": chat, "layers": [29], "numCompletionTokens": 2}
    frames = await _frames(client, body)
    tokens = [f for f in frames if f["kind"] == "token"]
    assert any(f.get("role") == "user" for f in tokens)  # chat spans come through
    assert [f["is_generated"] for f in tokens[-2:]] == [True, True]
    plain = {"modelId": SERVED_MODEL, "prompt": PROMPT, "layers": [20], "topN": 20}
    steer = {"steerTokens": [{"token": " cat"}], "steerStrength": 2, "filterNonWordTokens": False}

    def p_cat(frames: list[dict]) -> float:
        last = [f for f in frames if f["kind"] == "token"][-1]["results"][0]
        ranked = dict(zip(last["top_tokens"][0], last["top_probs"][0], strict=True))
        return ranked.get(" cat", 0.0)

    assert p_cat(await _frames(client, plain | steer)) > p_cat(await _frames(client, plain))


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"prompt": PROMPT, "chat": [{"role": "user", "content": "hi"}]}, 400, "exactly one"),
        ({}, 400, "exactly one"),
        ({"prompt": PROMPT, "layers": [99]}, 400, "out of range"),
        (
            {"prompt": PROMPT, "steerTokens": [{"token": "no such token!"}], "steerStrength": 1},
            400,
            "not one token",
        ),
        ({"chat": [{"role": "robot", "content": "hi"}]}, 422, "role"),
    ],
)
async def test_bad_lens_input_is_a_clear_4xx(
    real_api, body: dict, status: int, detail: str
) -> None:
    client, _ = real_api
    response = await client.post("/api/lens/prompt", json={"modelId": SERVED_MODEL, **body})
    assert response.status_code == status, response.text
    assert detail in response.text


async def test_raw_activations_as_json_and_npy_equal_the_services(real_api, real_services) -> None:
    client, _ = real_api
    body = {
        "modelId": SERVED_MODEL,
        "prompt": PROMPT,
        "layers": [6, 2],
        "hookPoint": "mlp.hook_post",
    }
    as_json = await client.post("/api/activation/raw", json=body)
    assert as_json.status_code == 200, as_json.text
    export = as_json.json()
    as_npy = await client.post("/api/activation/raw", json=body | {"format": "npy"})
    assert as_npy.status_code == 200, as_npy.text
    assert "attachment" in as_npy.headers["content-disposition"]
    array = np.load(io.BytesIO(as_npy.content), allow_pickle=False)
    assert array.dtype == np.float32 and list(array.shape) == export["shape"]
    assert export["layers"] == [2, 6] and export["shape"][1] == len(export["tokens"])
    np.testing.assert_allclose(array, np.asarray(export["values"]), rtol=1e-6, atol=1e-6)
    async with httpx.AsyncClient(
        base_url=real_services["inference"], headers={"x-secret-key": INFERENCE_SECRET}
    ) as inference:
        direct = (
            await inference.post(
                "/v1/activation/raw",
                json={
                    "prompts": [PROMPT],
                    "model": SERVED_MODEL,
                    "layers": [2, 6],
                    "hook_point": "mlp.hook_post",
                    "type": "all_tokens",
                },
            )
        ).json()["results"][0]
    assert export["tokenIds"] == direct["token_ids"]
    for layer, values in zip(direct["activations"], array, strict=True):
        np.testing.assert_allclose(values, np.asarray(layer["values"]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"layers": [0], "hookPoint": "hook_nothing"}, 404, "unknown hook point"),
        ({"layers": [99]}, 400, "out of range"),
        ({"layers": []}, 422, "layers"),
        ({"layers": [0], "format": "csv"}, 422, "format"),
    ],
)
async def test_bad_raw_activation_input_is_a_clear_4xx(
    real_api, body: dict, status: int, detail: str
) -> None:
    client, _ = real_api
    response = await client.post(
        "/api/activation/raw", json={"modelId": SERVED_MODEL, "prompt": PROMPT, **body}
    )
    assert response.status_code == status, response.text
    assert detail in response.text


async def test_attention_pattern_is_the_services(real_api, real_services) -> None:
    client, _ = real_api
    body = {"modelId": SERVED_MODEL, "prompt": PROMPT, "layer": 3, "head": 2}
    response = await client.post("/api/activation/attention", json=body)
    assert response.status_code == 200, response.text
    mine = response.json()
    async with httpx.AsyncClient(
        base_url=real_services["inference"], headers={"x-secret-key": INFERENCE_SECRET}
    ) as inference:
        direct = (
            await inference.post(
                "/v1/activation/attention",
                json={"prompt": PROMPT, "model": SERVED_MODEL, "layer": 3, "head": 2},
            )
        ).json()
    assert mine["tokens"] == direct["tokens"] and mine["seqLen"] == direct["seq_len"]
    assert mine["attentionIndices"] == direct["attention_indices"]
    assert mine["attentionValues"] == direct["attention_values"]
    assert mine["maxActivation"] == direct["max_activation"]
    bad = await client.post("/api/activation/attention", json=body | {"head": 99})
    assert bad.status_code == 400 and "out of range" in bad.json()["detail"]
