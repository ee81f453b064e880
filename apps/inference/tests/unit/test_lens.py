"""POST /v1/lens/prompt on the tiny model: against the model's own prediction and a
brute-force read-out, streamed frame by frame, with generation and steering."""

import json
from collections.abc import Callable

import httpx
import pytest
import torch
from fastapi import FastAPI

from interpedia_inference.engine import Engine
from interpedia_inference.lens import SUM_BLOCK, _sum_bf16, cpu_bf16_is_native, is_word_like

MODEL = "tiny-random"
PROMPT = "The capital of France is"


def _engine(app: FastAPI) -> Engine:
    return app.state.engine


async def _frames(client: httpx.AsyncClient, body: dict, **kw: object) -> list[dict]:
    async with client.stream("POST", "/v1/lens/prompt", json=body, **kw) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) async for line in response.aiter_lines() if line]


async def test_last_layer_is_the_model_prediction_and_others_match_brute_force(
    tiny_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = tiny_app
    engine = _engine(app)
    frames = await _frames(client, {"model": MODEL, "prompt": PROMPT, "topN": 5})
    assert [f["kind"] for f in frames[:2]] == ["meta", "prompt"] and frames[-1]["kind"] == "done"
    meta, tokens = frames[0], [f for f in frames if f["kind"] == "token"]
    ids = engine.tokenize(PROMPT)
    assert meta["layers_by_type"] == {"LOGIT_LENS": [0, 1]} and meta["prompt_len"] == len(ids)
    assert [t["id"] for t in tokens] == ids and [t["position"] for t in tokens] == list(
        range(len(ids))
    )

    model = engine.model
    batch = torch.tensor([ids])
    predicted = model.log_probs(batch)[0].argmax(-1)  # the model's own next tokens
    resid = model.run_hooks(batch, ["blocks.0.hook_resid_post"])["blocks.0.hook_resid_post"][0]
    hf = model.hf_model
    brute = torch.softmax(hf.lm_head(hf.model.norm(resid)).float(), -1)  # [seq, vocab]
    for position, frame in enumerate(tokens):
        (result,) = frame["results"]
        assert result["type"] == "LOGIT_LENS" and len(result["top_tokens"]) == 2
        last_tokens, last_probs = result["top_tokens"][1], result["top_probs"][1]
        assert last_tokens[0] == model.token_strings([int(predicted[position])])[0]
        assert last_probs == sorted(last_probs, reverse=True) and len(last_probs) == 5
        probs, top = brute[position].topk(5)
        assert result["top_tokens"][0] == model.token_strings(top.tolist())
        assert result["top_probs"][0] == pytest.approx(probs.tolist(), abs=1e-5)


async def test_filter_non_word_tokens_ranks_word_like_tokens_at_unchanged_probabilities(
    tiny_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = tiny_app
    body = {"model": MODEL, "prompt": PROMPT, "top_n": 8, "stream": False}
    plain = (await client.post("/v1/lens/prompt", json=body)).json()
    kept = (
        await client.post("/v1/lens/prompt", json={**body, "filter_non_word_tokens": True})
    ).json()
    assert kept["tokens"] != plain["tokens"]  # the tiny model does rank non-word tokens
    for frame, filtered in zip(plain["tokens"], kept["tokens"], strict=True):
        (before,), (after,) = frame["results"], filtered["results"]
        # the last layer's own top-1 stays first, whatever it is
        assert after["top_tokens"][-1][0] == before["top_tokens"][-1][0]
        for layer, tokens in enumerate(after["top_tokens"]):
            start = 1 if layer == len(after["top_tokens"]) - 1 else 0
            assert all(is_word_like(t) for t in tokens[start:]), tokens
            probs = after["top_probs"][layer]
            assert probs == sorted(probs, reverse=True)
            # a word-like token ranked in both runs has the same probability in both
            ranked = zip(before["top_tokens"][layer], before["top_probs"][layer], strict=True)
            for token, p in ranked:
                if token in tokens:
                    assert probs[tokens.index(token)] == pytest.approx(p, abs=1e-6)
    assert is_word_like(" cat") and is_word_like("don't") and not is_word_like(" .")
    assert not is_word_like("<|endoftext|>") and not is_word_like("-a") and not is_word_like("")


async def test_generation_continues_greedily_and_frames_stay_snake_case(
    tiny_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = tiny_app
    model = _engine(app).model
    body = {
        "model": MODEL,
        "prompt": PROMPT,
        "numCompletionTokens": 3,
        "temperature": 0,
        "layers": [0],
        "topN": 2,
    }
    frames = await _frames(client, body)
    generated = [f for f in frames if f["kind"] == "token" and f["is_generated"]]
    ids = model.tokenize(PROMPT)
    for _ in range(3):  # greedy by hand
        ids.append(int(model.log_probs(torch.tensor([ids]))[0, -1].argmax()))
    assert [f["id"] for f in generated] == ids[-3:]
    done = frames[-1]
    assert done["seq_len"] == len(ids) and done["completion"] == model.tokenizer.decode(ids[-3:])
    assert frames[0]["num_completion_tokens"] == 3  # snake_case frames in a camelCase request

    whole = await client.post("/v1/lens/prompt", json={**body, "stream": False})
    assert whole.status_code == 200
    assert [t["id"] for t in whole.json()["tokens"]] == [
        f["id"] for f in frames if f["kind"] == "token"
    ]


async def test_steering_along_a_token_raises_its_probability(
    tiny_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = tiny_app
    model = _engine(app).model
    target = model.token_strings(model.tokenize(" Paris", prepend_bos=False))[0]
    base = {"model": MODEL, "prompt": PROMPT, "top_n": 50, "stream": False, "layers": [1]}

    def prob_of(body: dict) -> float:
        last = body["tokens"][-1]["results"][0]
        row = dict(zip(last["top_tokens"][-1], last["top_probs"][-1], strict=True))
        return row.get(target, 0.0)

    plain = (await client.post("/v1/lens/prompt", json=base)).json()
    steered = await client.post(
        "/v1/lens/prompt",
        json={
            **base,
            "steer_tokens": [{"token": target, "type": "LOGIT_LENS"}],
            "steer_strength": 2,
        },
    )
    assert steered.status_code == 200, steered.text
    assert prob_of(steered.json()) > prob_of(plain)  # into the top 50 of 49,152 tokens
    ablated = await client.post(
        "/v1/lens/prompt",
        json={
            **base,
            "steer_tokens": [{"token": target, "type": "LOGIT_LENS"}],
            "steer_ablate": True,
        },
    )
    assert prob_of(ablated.json()) < prob_of(steered.json())


async def test_a_non_finite_lens_is_a_422_or_an_error_frame_never_null_probabilities(
    tiny_app: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forward that overflows (faked: the steering writes inf from position `from_`
    on) is refused before any frame, or, at a generated token, ends the stream with an
    `error` frame that says why."""
    from interpedia_inference.lens import LensIntervention

    _, client = tiny_app
    prompt_len = len(_engine(tiny_app[0]).tokenize(PROMPT))

    def overflow(from_: int) -> Callable[..., torch.Tensor]:
        def apply(self: LensIntervention, key: tuple[str, int], acts: torch.Tensor) -> torch.Tensor:
            out = acts.clone()
            out[:, from_:] = float("inf")
            return out

        return apply

    body = {
        "model": MODEL,
        "prompt": PROMPT,
        "steer_tokens": [{"token": "a"}],
        "steer_strength": 1,
        "steer_generated_tokens": True,
    }
    monkeypatch.setattr(LensIntervention, "apply", overflow(0))
    for stream in (False, True):
        r = await client.post("/v1/lens/prompt", json={**body, "stream": stream})
        assert r.status_code == 422, r.text
        assert "not finite at layer 0" in r.json()["detail"]
        assert "lower steer_strength" in r.json()["detail"]
    monkeypatch.setattr(LensIntervention, "apply", overflow(prompt_len))
    frames = await _frames(client, {**body, "num_completion_tokens": 2})
    tokens = [f for f in frames if f["kind"] == "token"]
    assert len(tokens) == prompt_len and frames[-1]["kind"] == "error"
    assert "not finite" in frames[-1]["error"]
    assert all(p is not None for t in tokens for row in t["results"][0]["top_probs"] for p in row)


async def test_chat_frames_carry_message_spans(client: httpx.AsyncClient) -> None:
    frames = await _frames(
        client, {"model": MODEL, "chat": [{"role": "user", "content": "Hi there"}], "layers": [1]}
    )
    prompt = frames[1]["tokens"]
    content = [t for t in prompt if t["section"] == "content"]
    assert content and {t["role"] for t in content} == {"user"}
    assert "".join(t["token"] for t in content).strip() == "Hi there"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"prompt": "a", "chat": [{"role": "user", "content": "b"}]}, "exactly one"),
        ({}, "exactly one"),
        ({"prompt": "a", "type": ["JACOBIAN_LENS"]}, "Jacobian"),
        ({"prompt": "a", "layers": [7]}, "out of range"),
        ({"prompt": "word " * 80}, "token limit"),
        (
            {"prompt": "a", "steer_tokens": [{"token": "no such token!!"}], "steer_strength": 1},
            "vocabulary",
        ),
        ({"prompt": "a", "num_completion_tokens": 500}, "cap"),
        # Bounded in the schema, so a 422 naming the field before any lookup.
        ({"prompt": "a", "layers": [-1]}, "layers"),
        ({"input_token_ids": [2**31]}, "input_token_ids"),
        ({"prompt": "a", "seed": 2**64}, "seed"),
    ],
)
async def test_bad_lens_input_is_400(client: httpx.AsyncClient, body: dict, detail: str) -> None:
    r = await client.post("/v1/lens/prompt", json={"model": MODEL, **body})
    assert r.status_code in (400, 422), r.text
    assert detail in r.json()["detail"]


async def test_typed_client_reads_the_whole_run(
    tiny_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    from interpedia_clients.inference import AsyncInferenceClient, models

    app, _ = tiny_app
    transport = httpx.ASGITransport(app=app)
    async with AsyncInferenceClient("http://test", transport=transport) as inference:
        run = await inference.lens_prompt(
            models.LensPromptRequest(model=MODEL, prompt=PROMPT, layers=[0], stream=False)
        )
        caps = await inference.capabilities()
    assert run.meta.layers_by_type == {"LOGIT_LENS": [0, 1]}
    assert len(run.tokens) == run.done.prompt_len == len(_engine(app).tokenize(PROMPT))
    assert caps.endpoints["lens_logit"] and caps.endpoints["dfa"]
    assert "PROJECTION_CAP" in caps.steer_methods


def test_bf16_block_sum_is_close_to_float64_with_and_without_a_remainder() -> None:
    """The fast lens's normaliser sum: within bf16's per-block rounding of the exact sum,
    for a vocabulary that is a whole number of blocks and one that is not."""
    generator = torch.Generator().manual_seed(0)
    for n in (4 * SUM_BLOCK, 4 * SUM_BLOCK + 37):
        terms = (torch.randn(3, n, generator=generator) * 3 - 5).exp().to(torch.bfloat16)
        exact = terms.double().sum(-1)
        got = _sum_bf16(terms)
        assert got.dtype == torch.float32
        assert torch.allclose(got.double(), exact, rtol=4e-3), (n, got, exact)
        # rows of a wider tensor: blocks follow the row stride, not the row length
        wide = torch.cat([terms, torch.ones(3, 5, dtype=torch.bfloat16)], dim=-1)
        assert torch.allclose(_sum_bf16(wide[:, :n]).double(), exact, rtol=4e-3)


def test_the_bf16_read_out_is_a_cpu_path_only() -> None:
    """On CUDA the lens reads out in float32 (its bf16 bound was measured on CPU); on this
    CPU it follows oneDNN's bf16 support."""
    assert not cpu_bf16_is_native("cuda") and not cpu_bf16_is_native("cuda:1")
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert cpu_bf16_is_native("cpu") == (torch.backends.mkldnn.is_available() and native)
