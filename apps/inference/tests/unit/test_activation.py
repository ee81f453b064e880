"""Activation endpoints on the tiny random model, checked against direct computation."""

import asyncio

import httpx
import pytest
import torch
from fastapi import FastAPI

from interpedia_inference.engine import Engine

MODEL = "tiny-random"
PROMPT = "The quick brown fox jumps over the lazy dog"


def _engine(app: FastAPI) -> Engine:
    return app.state.engine


def _direct(engine: Engine, prompt: str, source: str) -> torch.Tensor:
    """[seq, d_sae] computed without the batcher."""
    sae = engine.registry.get(source)
    tokens = torch.tensor([engine.tokenize(prompt)])
    acts = engine.model.run_hooks(tokens, [sae.hook_name])[sae.hook_name]
    return sae.encode(acts)[0]


async def test_single_matches_direct(tiny_app: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = tiny_app
    expected = _direct(_engine(app), PROMPT, "1-res-test")
    index = int(expected.max(dim=0).values.argmax())
    r = await client.post(
        "/v1/activation/single",
        json={"prompt": PROMPT, "model": MODEL, "source": "1-res-test", "index": str(index)},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tokens"][0] == "<|im_start|>" and body["tokens_is_special"][0]
    assert torch.allclose(torch.tensor(body["activation"]["values"]), expected[:, index], atol=1e-4)
    assert body["activation"]["max_value_index"] == int(expected[:, index].argmax())


async def test_single_custom_vector(tiny_app: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = tiny_app
    engine = _engine(app)
    vector = torch.linspace(-1, 1, engine.model.d_model)
    r = await client.post(
        "/v1/activation/single",
        json={
            "prompt": PROMPT,
            "model": MODEL,
            "vector": vector.tolist(),
            "hook": "blocks.0.hook_resid_post",
        },
    )
    assert r.status_code == 200, r.text
    tokens = torch.tensor([engine.tokenize(PROMPT)])
    acts = engine.model.run_hooks(tokens, ["blocks.0.hook_resid_post"])["blocks.0.hook_resid_post"][
        0
    ]
    assert torch.allclose(torch.tensor(r.json()["activation"]["values"]), acts @ vector, atol=1e-4)


async def test_single_batch(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/activation/single-batch",
        json={"prompts": [PROMPT, "Hello"], "model": MODEL, "source": "0-res-test", "index": "3"},
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 2 and len(results[1]["tokens"]) == 2


async def test_all_ranks_by_max_and_by_token(tiny_app: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = tiny_app
    engine = _engine(app)
    base = {
        "prompt": PROMPT,
        "model": MODEL,
        "source_set": "res-test",
        "selected_sources": [],
        "ignore_bos": True,
    }
    r = await client.post(
        "/v1/activation/all", json={**base, "num_results": 10, "sort_by_token_indexes": []}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    acts = body["activations"]
    assert 0 < len(acts) <= 10
    maxes = [a["max_value"] for a in acts]
    assert maxes == sorted(maxes, reverse=True)
    # the best feature really is the best over both sources, BOS excluded
    best = max(float(_direct(engine, PROMPT, s)[1:].max()) for s in ("0-res-test", "1-res-test"))
    assert maxes[0] == pytest.approx(best, abs=1e-4)
    assert acts[0]["max_value_index"] != 0
    assert len(body["counts"]) == 2 and len(body["tokens"]) == len(acts[0]["values"])

    r = await client.post(
        "/v1/activation/all",
        json={
            **base,
            "num_results": 3,
            "sort_by_token_indexes": [2],
            "selected_sources": ["1-res-test"],
        },
    )
    direct = _direct(engine, PROMPT, "1-res-test")
    assert [a["index"] for a in r.json()["activations"]] == direct[2].topk(3).indices.tolist()

    r = await client.post(
        "/v1/activation/all",
        json={**base, "num_results": 5, "sort_by_token_indexes": [], "feature_filter": [7, 9]},
    )
    assert {a["index"] for a in r.json()["activations"]} <= {7, 9}


async def test_all_batch(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/activation/all-batch",
        json={
            "prompts": [PROMPT, "Hi there"],
            "model": MODEL,
            "source_set": "res-test",
            "selected_sources": ["0-res-test"],
            "sort_by_token_indexes": [],
            "ignore_bos": False,
        },
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["results"]) == 2


async def test_topk_by_token(tiny_app: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = tiny_app
    r = await client.post(
        "/v1/activation/topk-by-token",
        json={
            "prompt": PROMPT,
            "model": MODEL,
            "source": "1-res-test",
            "top_k": 4,
            "ignore_bos": True,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    direct = _direct(_engine(app), PROMPT, "1-res-test")
    assert body["results"][0]["token_position"] == 1
    assert len(body["results"]) == len(body["tokens"]) - 1
    first = body["results"][0]["top_features"]
    assert [f["feature_index"] for f in first] == direct[1].topk(4).indices.tolist()
    r = await client.post(
        "/v1/activation/topk-by-token-batch",
        json={
            "prompts": [PROMPT, "Hey"],
            "model": MODEL,
            "source": "1-res-test",
            "top_k": 2,
            "ignore_bos": False,
        },
    )
    assert r.status_code == 200 and len(r.json()["results"]) == 2


async def test_source(tiny_app: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = tiny_app
    r = await client.post(
        "/v1/activation/source",
        json={"prompts": [PROMPT, "Hello"], "model": MODEL, "source": "1-res-test"},
    )
    assert r.status_code == 200, r.text
    first = r.json()["results"][0]
    direct = _direct(_engine(app), PROMPT, "1-res-test")
    assert sum(len(v) for v in first["activeFeatures"].values()) == int((direct > 0).sum())
    index, pairs = next(iter(first["activeFeatures"].items()))
    pos, value = pairs[0]
    assert value == pytest.approx(float(direct[int(pos), int(index)]), abs=1e-4)


async def test_neurons_source(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/activation/single",
        json={"prompt": PROMPT, "model": MODEL, "source": "1-neurons", "index": "5"},
    )
    assert r.status_code == 200, r.text


async def test_burst_equals_sequential(tiny_app: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = tiny_app
    prompts = [f"Prompt number {i} has {'many ' * i}words" for i in range(8)]

    def body(p: str) -> dict[str, object]:
        return {
            "prompt": p,
            "model": MODEL,
            "source_set": "res-test",
            "selected_sources": [],
            "sort_by_token_indexes": [],
            "ignore_bos": True,
            "num_results": 5,
        }

    sequential = [(await client.post("/v1/activation/all", json=body(p))).json() for p in prompts]
    batches_before = _engine(app).batcher.batches_run
    burst = await asyncio.gather(
        *(client.post("/v1/activation/all", json=body(p)) for p in prompts)
    )
    assert _engine(app).batcher.batches_run - batches_before < len(prompts)  # really batched
    for seq, par in zip(sequential, burst, strict=True):
        par_body = par.json()
        assert [a["index"] for a in par_body["activations"]] == [
            a["index"] for a in seq["activations"]
        ]
        for a, b in zip(par_body["activations"], seq["activations"], strict=True):
            assert a["values"] == pytest.approx(b["values"], abs=1e-4)


async def test_tokenize_and_util(tiny_app: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = tiny_app
    engine = _engine(app)
    r = await client.post("/v1/tokenize", json={"model": MODEL, "text": "Hello world"})
    assert r.json() == {
        "tokens": [1, 19556, 905],
        "token_strings": ["<|im_start|>", "Hello", " world"],
        "prepend_bos": True,
    }
    r = await client.post(
        "/v1/tokenize", json={"model": MODEL, "text": "Hello world", "prepend_bos": False}
    )
    assert r.json()["tokens"] == [19556, 905] and r.json()["prepend_bos"] is False

    r = await client.post(
        "/v1/util/sae-vector", json={"model": MODEL, "source": "1-res-test", "index": 7}
    )
    assert r.status_code == 200, r.text
    assert r.json()["hookName"] == "blocks.1.hook_resid_post"
    w_dec = engine.registry.get("1-res-test").W_dec
    assert torch.allclose(torch.tensor(r.json()["vector"]), w_dec[7])

    r = await client.post(
        "/v1/util/sae-topk-by-decoder-cossim",
        json={
            "model": MODEL,
            "source": "1-res-test",
            "num_results": 5,
            "feature": {"model": MODEL, "source": "1-res-test", "index": 7},
        },
    )
    assert r.status_code == 200, r.text
    top = r.json()["topk_decoder_cossim_features"]
    assert top[0]["feature"]["index"] == 7 and top[0]["cosine_similarity"] == pytest.approx(
        1.0, abs=1e-5
    )
    sims = torch.nn.functional.cosine_similarity(w_dec, w_dec[7:8], dim=-1)
    assert [t["feature"]["index"] for t in top] == sims.topk(5).indices.tolist()
