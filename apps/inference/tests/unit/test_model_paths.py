"""The paths that read the model itself (Neuronpedia's 2026 additions): raw activations,
attention patterns, the chat template with spans, capabilities, steer health, initialize.
Checked against the model's own hook values, in both wire dialects, and on bad input."""

import httpx
import pytest
import torch
from fastapi import FastAPI

from interpedia_inference.engine import Engine
from interpedia_inference.raw_activations import SPARSE_THRESHOLD, sparsify_attention

MODEL = "tiny-random"
PROMPTS = ["The quick brown fox", "Hello there, general"]


def _engine(app: FastAPI) -> Engine:
    return app.state.engine


def _hooks(engine: Engine, prompt: str, names: list[str]) -> dict[str, torch.Tensor]:
    tokens = torch.tensor([engine.tokenize(prompt)])
    return {k: v[0] for k, v in engine.model.run_hooks(tokens, names).items()}


async def test_raw_final_token_equals_the_model_hooks(
    tiny_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = tiny_app
    engine = _engine(app)
    r = await client.post("/v1/activation/raw", json={"prompts": PROMPTS, "model": MODEL})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["hook_point"] == "residual_stream" and body["type"] == "final_output_token"
    assert body["dtype"] == "float32" and body["device"] == "cpu"
    for prompt, result in zip(PROMPTS, body["results"], strict=True):
        ids = engine.tokenize(prompt)
        assert result["token_ids"] == ids
        assert result["token_strings"] == engine.token_strings(ids)
        assert [a["layer"] for a in result["activations"]] == [0, 1]
        expected = _hooks(engine, prompt, ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"])
        for layer_result in result["activations"]:
            assert layer_result["token_indices"] == [len(ids) - 1]
            want = expected[f"blocks.{layer_result['layer']}.hook_resid_post"][-1]
            got = torch.tensor(layer_result["values"][0])
            assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5)


async def test_raw_every_token_of_any_hook_point_in_camel_case(
    tiny_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = tiny_app
    engine = _engine(app)
    r = await client.post(
        "/v1/activation/raw",
        json={
            "prompts": PROMPTS[:1],
            "layers": [1],
            "hookPoint": "attn.hook_z",
            "type": "all_tokens",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["hookPoint"] == "attn.hook_z" and body["type"] == "all_tokens"
    (layer,) = body["results"][0]["activations"]
    want = _hooks(engine, PROMPTS[0], ["blocks.1.attn.hook_z"])["blocks.1.attn.hook_z"]
    assert layer["tokenIndices"] == list(range(want.shape[0]))
    assert want.shape[1] == engine.model.n_heads * engine.model.d_head
    assert torch.allclose(torch.tensor(layer["values"]), want, atol=1e-5)
    assert {"tokenStrings", "tokenIds"} <= set(body["results"][0])


async def test_attention_rows_sum_to_one_and_sparse_entries_match(
    tiny_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = tiny_app
    engine = _engine(app)
    prompt = "When Mary and John went to the store, John gave a drink to"
    name = "blocks.1.attn.hook_pattern"
    tokens = torch.tensor([engine.tokenize(prompt)])
    _, cache = engine.model.bridge.run_with_cache(tokens, names_filter=[name])
    dense = cache[name][0, 2]  # [q, k] of head 2
    assert torch.allclose(dense.sum(-1), torch.ones(dense.shape[0]), atol=1e-5)

    r = await client.post(
        "/v1/activation/attention", json={"prompt": prompt, "model": MODEL, "layer": 1, "head": 2}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    seq = body["seq_len"]
    assert seq == tokens.shape[1] and body["tokens"] == engine.token_strings(tokens[0].tolist())
    assert len(body["attention_indices"]) == len(body["attention_values"]) > 0
    assert body["attention_indices"] == sorted(body["attention_indices"])
    for flat, value in zip(body["attention_indices"], body["attention_values"], strict=True):
        q, k = divmod(flat, seq)
        assert k <= q  # causal
        assert value == pytest.approx(float(dense[q, k]), abs=1e-4) and value >= SPARSE_THRESHOLD
    assert body["max_activation"] == pytest.approx(float(dense[1:, 1:].max()), abs=1e-4)
    per_row = [sum(1 for f in body["attention_indices"] if f // seq == q) for q in range(seq)]
    assert max(per_row) <= 8 and per_row[0] == 1  # BOS attends only to itself

    camel = await client.post(
        "/v1/activation/attention",
        json={"prompt": prompt, "model": MODEL, "layer": 1, "head": 2},
        headers={"X-Wire-Dialect": "camel"},
    )
    assert camel.json()["attentionIndices"] == body["attention_indices"]
    assert camel.json()["seqLen"] == seq and "maxActivation" in camel.json()


def test_sparsify_keeps_the_top_keys_above_the_threshold() -> None:
    pattern = torch.tensor([[1.0, 0.0, 0.0], [0.3, 0.7, 0.0], [0.001, 0.5, 0.499]])
    indices, values, max_value = sparsify_attention(pattern)
    assert indices == [0, 3, 4, 7, 8]  # (2, 0) is under the threshold
    assert values == [1.0, 0.3, 0.7, 0.5, 0.499]
    assert max_value == 0.7  # row 0 and column 0 left out


async def test_apply_chat_template_spans(tiny_app: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = tiny_app
    tokenizer = _engine(app).model.tokenizer
    messages = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Spain?"},
    ]
    r = await client.post("/v1/apply-chat-template", json={"messages": messages})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["prompt"] == tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    assert body["tokens"] == tokenizer(body["prompt"], add_special_tokens=False)["input_ids"]
    spans = body["spans"]
    assert [s["position"] for s in spans] == list(range(len(body["tokens"])))
    assert [s["token_id"] for s in spans] == body["tokens"]
    for index, message in enumerate(messages):
        content = [s for s in spans if s["message_index"] == index and s["section"] == "content"]
        assert tokenizer.decode([s["token_id"] for s in content]).strip() == message["content"]
        assert {s["role"] for s in spans if s["message_index"] == index} == {message["role"]}
        header = [s for s in spans if s["message_index"] == index and s["section"] == "header"]
        assert header and header[0]["token_str"] == "<|im_start|>"
    # The generation prompt belongs to no message.
    tail = spans[-3:]
    assert all(s["section"] == "scaffold" and s["message_index"] is None for s in tail)
    assert "assistant" in tokenizer.decode([s["token_id"] for s in tail])

    camel = await client.post(
        "/v1/apply-chat-template", json={"messages": messages, "addGenerationPrompt": False}
    )
    first = camel.json()["spans"][0]
    assert {"tokenId", "tokenStr", "messageIndex"} <= set(first)
    assert camel.json()["spans"][-1]["section"] == "footer"


async def test_capabilities_steer_health_and_initialize(
    tiny_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = tiny_app
    caps = (await client.get("/v1/capabilities")).json()
    assert caps["num_layers"] == 2 and caps["n_heads"] == 4 and caps["d_model"] == 64
    assert {"hook_resid_post", "attn.hook_z", "mlp.hook_post"} <= set(caps["hook_points"])
    assert caps["endpoints"]["activation_raw"] and caps["endpoints"]["activation_attention"]
    assert caps["max_raw_prompts"] == 16 and caps["activation_token_limit"] == 64
    assert "SIMPLE_ADDITIVE" in caps["steer_methods"]
    health = (await client.get("/v1/steer/health")).json()
    assert health["status"] == "ok" and health["active_generations"] == 0
    assert health["threads"] >= 1 and health["max_rss_bytes"] > 10_000_000
    ready = await client.post("/initialize")
    assert ready.status_code == 200 and ready.json()["model"] == MODEL
    assert ready.json()["sources"] == ["0-res-test", "1-res-test"]
    other = await client.post("/initialize", params={"custom_hf_model_id": "gpt2"})
    assert other.status_code == 400 and "not available" in other.json()["detail"]
