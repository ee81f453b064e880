"""The real packaged model (SmolLM2-135M) with a random 512-feature SAE at layer 6 (and a
random transcoder at layer 3), served over real HTTP: Neuronpedia's own client against every
endpoint, SSE, steering effect, concurrent bursts. Loaded once for the module (slow)."""

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch

from interpedia_inference.app import create_app
from interpedia_inference.settings import InferenceSettings
from interpedia_runtime.saes import save_random_sae
from interpedia_testing.net import wait_for_http
from interpedia_testing.servers import ThreadedServer

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m"
SECRET = "integration-secret"
SOURCE = "6-res-it"
PROMPT = "The Eiffel Tower is located in the city of"
PLANTED = 17
LONDON_ID = 4528  # " London" in SmolLM2's tokenizer
ROOT = Path(__file__).resolve().parents[4]
TRANSCODER_LAYER = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    folder = save_random_sae(
        Path(tmp_path_factory.mktemp("sae")) / "l6",
        d_in=576,
        d_sae=512,
        hook_name="blocks.6.hook_resid_post",
    )
    planted = _planted_sae(Path(tmp_path_factory.mktemp("sae")) / "l29")
    transcoder = _random_transcoder(Path(tmp_path_factory.mktemp("sae")) / "tc3")
    settings = InferenceSettings(
        model_id=MODEL,
        sae_sources=[str(folder), str(planted), str(transcoder)],
        sae_source_set="res-it",
        device="cpu",
        secret=SECRET,
        token_limit=256,
        max_completion_tokens=64,
    )
    app = create_app(settings)
    with ThreadedServer(app) as server:
        # The port opens before the model has loaded: health says 503 first, then 200.
        wait_for_http(f"{server.url}/health", timeout=30, expect=503)
        wait_for_http(f"{server.url}/health", timeout=180, expect=200)
        yield server.url, app


def _planted_sae(folder: Path) -> Path:
    """A random SAE at the last layer whose feature PLANTED writes " London": its decoder row
    is W_U[:, London] divided by the final norm's weight (so after the norm it points at the
    token's unembedding)."""
    from safetensors.torch import load_file, save_file

    from interpedia_runtime.packaged import snapshot_dir

    save_random_sae(folder, d_in=576, d_sae=64, hook_name="blocks.29.hook_resid_post", seed=3)
    weights = load_file(str(next(snapshot_dir().glob("*.safetensors"))))
    w_u = weights.get("lm_head.weight", weights["model.embed_tokens.weight"])  # [d_vocab, d_model]
    direction = w_u[LONDON_ID] / weights["model.norm.weight"]
    direction = direction / direction.norm()
    sae_file = folder / "sae_weights.safetensors"
    sae = load_file(str(sae_file))
    sae["W_dec"][PLANTED] = direction
    sae["W_enc"][:, PLANTED] = direction
    save_file(sae, str(sae_file))
    return folder


def _random_transcoder(folder: Path) -> Path:
    """A random SAELens transcoder at layer TRANSCODER_LAYER: reads the MLP input, writes
    the MLP output (`hook_name_out`), as the trainer's transcoder sets do."""
    from sae_lens import Transcoder, TranscoderConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(5)
    metadata = SAEMetadata(
        model_name=MODEL,
        hook_name=f"blocks.{TRANSCODER_LAYER}.mlp.hook_in",
        hook_name_out=f"blocks.{TRANSCODER_LAYER}.mlp.hook_out",
        prepend_bos=True,
    )
    config = TranscoderConfig(
        d_in=576, d_sae=64, d_out=576, apply_b_dec_to_input=False, metadata=metadata
    )
    Transcoder(config).save_model(folder)
    return folder


@pytest.fixture(scope="module")
def api(server: tuple[str, object]) -> object:
    from neuronpedia_inference_client import ApiClient, Configuration, DefaultApi

    base, _ = server
    config = Configuration(host=f"{base}/v1", api_key={"SimpleSecretAuth": SECRET})
    return DefaultApi(ApiClient(config))


def _post(base: str, path: str, body: dict, **kw: object) -> httpx.Response:
    return httpx.post(
        f"{base}{path}", json=body, headers={"X-SECRET-KEY": SECRET}, timeout=120, **kw
    )


def test_neuronpedia_client_activation_endpoints(api: object) -> None:
    import neuronpedia_inference_client as np

    single = api.activation_single_post(
        np.ActivationSinglePostRequest(prompt=PROMPT, model=MODEL, source=SOURCE, index="3")
    )
    assert len(single.activation.values) == len(single.tokens) == len(single.tokens_is_special)
    single_vec = api.activation_single_post(
        np.ActivationSinglePostRequest(
            prompt=PROMPT, model=MODEL, vector=[0.1] * 576, hook="blocks.3.hook_resid_post"
        )
    )
    assert len(single_vec.activation.values) == len(single_vec.tokens)
    batch = api.activation_single_batch_post(
        np.ActivationSingleBatchPostRequest(
            prompts=[PROMPT, "Hello"], model=MODEL, source=SOURCE, index="3"
        )
    )
    assert len(batch.results) == 2
    all_ = api.activation_all_post(
        np.ActivationAllPostRequest(
            prompt=PROMPT,
            model=MODEL,
            source_set="res-it",
            selected_sources=[SOURCE],
            sort_by_token_indexes=[],
            ignore_bos=True,
            num_results=10,
        )
    )
    assert 0 < len(all_.activations) <= 10 and all_.activations[0].source == SOURCE
    all_batch = api.activation_all_batch_post(
        np.ActivationAllBatchPostRequest(
            prompts=[PROMPT, "Hi"],
            model=MODEL,
            source_set="res-it",
            selected_sources=[],
            sort_by_token_indexes=[],
            ignore_bos=True,
            num_results=5,
        )
    )
    assert len(all_batch.results) == 2
    topk = api.activation_topk_by_token_post(
        np.ActivationTopkByTokenPostRequest(
            prompt=PROMPT, model=MODEL, source=SOURCE, top_k=3, ignore_bos=True
        )
    )
    assert len(topk.results) == len(topk.tokens) - 1 and len(topk.results[0].top_features) == 3
    topk_batch = api.activation_topk_by_token_batch_post(
        np.ActivationTopkByTokenBatchPostRequest(
            prompts=[PROMPT, "Hey"], model=MODEL, source=SOURCE, top_k=2, ignore_bos=False
        )
    )
    assert len(topk_batch.results) == 2
    source = api.activation_source_post(
        np.ActivationSourcePostRequest(prompts=[PROMPT], model=MODEL, source=SOURCE)
    )
    assert source.results[0].active_features


def test_neuronpedia_client_steer_tokenize_util(api: object) -> None:
    import neuronpedia_inference_client as np

    feature = np.NPSteerFeature(model=MODEL, source=SOURCE, index=5, strength=8)
    steer = api.steer_completion_post(
        np.SteerCompletionRequest(
            prompt=PROMPT,
            model=MODEL,
            steer_method=np.NPSteerMethod.SIMPLE_ADDITIVE,
            normalize_steering=False,
            types=[np.NPSteerType.STEERED, np.NPSteerType.DEFAULT],
            features=[feature],
            n_completion_tokens=4,
            temperature=0.5,
            strength_multiplier=2,
            freq_penalty=1,
            seed=16,
            n_logprobs=2,
        )
    )
    assert [o.type for o in steer.outputs] == [np.NPSteerType.STEERED, np.NPSteerType.DEFAULT]
    assert steer.outputs[0].output.startswith(PROMPT) and len(steer.outputs[0].logprobs) >= 1
    chat = api.steer_completion_chat_post(
        np.SteerCompletionChatPostRequest(
            prompt=[np.NPSteerChatMessage(role="user", content="What is the capital of France?")],
            model=MODEL,
            steer_method=np.NPSteerMethod.ORTHOGONAL_DECOMP,
            normalize_steering=True,
            types=[np.NPSteerType.STEERED, np.NPSteerType.DEFAULT],
            features=[feature],
            n_completion_tokens=4,
            temperature=0,
            strength_multiplier=1,
            freq_penalty=0,
            seed=1,
            steer_special_tokens=False,
        )
    )
    assert chat.outputs[1].chat_template[-1].role == "assistant" and chat.input.raw
    tok = api.tokenize_post(np.TokenizePostRequest(model=MODEL, text="Hello world"))
    assert tok.prepend_bos and tok.token_strings[1:] == ["Hello", " world"]
    vec = api.util_sae_vector_post(np.UtilSaeVectorPostRequest(model=MODEL, source=SOURCE, index=5))
    assert len(vec.vector) == 576 and vec.hook_name == "blocks.6.hook_resid_post"
    cos = api.util_sae_topk_by_decoder_cossim_post(
        np.UtilSaeTopkByDecoderCossimPostRequest(
            feature=np.NPFeature(model=MODEL, source=SOURCE, index=5),
            model=MODEL,
            source=SOURCE,
            num_results=4,
        )
    )
    assert cos.topk_decoder_cossim_features[0].feature.index == 5


def test_stream_over_http(server: tuple[str, object]) -> None:
    base, _ = server
    body = {
        "prompt": PROMPT,
        "model": MODEL,
        "types": ["STEERED", "DEFAULT"],
        "stream": True,
        "features": [{"model": MODEL, "source": SOURCE, "index": 1, "strength": 10}],
        "n_completion_tokens": 8,
        "temperature": 0,
        "seed": 1,
        "strength_multiplier": 1,
        "freq_penalty": 0,
        "steer_method": "SIMPLE_ADDITIVE",
        "normalize_steering": False,
    }
    messages = []
    arrivals = []
    started = time.monotonic()
    with httpx.stream(
        "POST",
        f"{base}/v1/steer/completion",
        json=body,
        headers={"X-SECRET-KEY": SECRET},
        timeout=120,
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                messages.append(json.loads(line[6:]))
                arrivals.append(time.monotonic())
    assert len(messages) == 8
    # Token by token: the messages arrive over most of the generation. One final blob of
    # eight messages would arrive within a few milliseconds of its first.
    assert arrivals[-1] - arrivals[0] > 0.5 * (arrivals[-1] - started), (started, arrivals)
    final = _post(base, "/v1/steer/completion", {**body, "stream": False}).json()
    assert messages[-1] == final


def test_large_strength_raises_top_logit_lens_tokens(server: tuple[str, object]) -> None:
    base, app = server
    engine = app.state.engine
    direction = engine.registry.get("29-res-it").decoder_vector(PLANTED)
    top_ids = (direction @ engine.model.unembed).topk(10).indices.tolist()  # logit lens
    assert LONDON_ID in top_ids
    top_strings = {engine.model.tokenizer.decode([t]) for t in top_ids}
    body = {
        "prompt": PROMPT,
        "model": MODEL,
        "types": ["STEERED", "DEFAULT"],
        "features": [{"model": MODEL, "source": "29-res-it", "index": PLANTED, "strength": 300}],
        "n_completion_tokens": 1,
        "temperature": 0,
        "seed": 1,
        "strength_multiplier": 1,
        "n_logprobs": 10,
        "freq_penalty": 0,
        "steer_method": "SIMPLE_ADDITIVE",
        "normalize_steering": False,
    }
    steered, default = _post(base, "/v1/steer/completion", body).json()["outputs"]

    def mass(output: dict) -> float:
        return sum(
            float(torch.tensor(t["logprob"]).exp())
            for t in output["logprobs"][0]["top_logprobs"]
            if t["token"] in top_strings
        )

    assert default["output"].endswith(" Paris")
    assert mass(steered) > mass(default) + 0.5, (mass(steered), mass(default))
    assert steered["output"].endswith(" London")


def test_transcoder_feature_steers_at_the_mlp_output(server: tuple[str, object]) -> None:
    """Steering a transcoder feature adds its decoder row where the transcoder writes (the
    MLP's output), not where it reads: the served logprobs equal a plain forward with the
    row added to that layer's MLP output by a hand-made hook."""
    base, app = server
    engine = app.state.engine
    source, index, strength = f"{TRANSCODER_LAYER}-res-it", 7, 20.0
    transcoder = engine.registry.get(source)
    assert transcoder.hook_name == f"blocks.{TRANSCODER_LAYER}.mlp.hook_in"
    assert transcoder.steer_hook == f"blocks.{TRANSCODER_LAYER}.mlp.hook_out"
    # The webapi steers with this vector at this hook when it mixes features and vectors.
    row = _post(base, "/v1/util/sae-vector", {"model": MODEL, "source": source, "index": index})
    assert row.json()["hookName"] == f"blocks.{TRANSCODER_LAYER}.mlp.hook_out"
    body = {
        "prompt": PROMPT,
        "model": MODEL,
        "types": ["STEERED", "DEFAULT"],
        "features": [{"model": MODEL, "source": source, "index": index, "strength": strength}],
        "n_completion_tokens": 1,
        "temperature": 0,
        "seed": 1,
        "strength_multiplier": 1,
        "n_logprobs": 5,
        "freq_penalty": 0,
        "steer_method": "SIMPLE_ADDITIVE",
        "normalize_steering": False,
    }
    steered, default = _post(base, "/v1/steer/completion", body).json()["outputs"]

    hf = engine.model.hf_model
    row = transcoder.decoder_vector(index).float()
    ids = torch.tensor([engine.tokenize(PROMPT)])

    def next_logprobs(module: torch.nn.Module | None) -> torch.Tensor:
        handle = (
            module.register_forward_hook(lambda _m, _a, out: out + strength * row)
            if module is not None
            else None
        )
        try:
            with torch.no_grad():
                return hf(ids).logits[0, -1].float().log_softmax(-1)
        finally:
            if handle is not None:
                handle.remove()

    def top(logprobs: torch.Tensor) -> list[tuple[str, float]]:
        values, top_ids = logprobs.topk(5)
        decode = engine.model.tokenizer.decode
        return [(decode([i]), v) for v, i in zip(values.tolist(), top_ids.tolist(), strict=True)]

    def served(output: dict) -> list[tuple[str, float]]:
        return [(t["token"], t["logprob"]) for t in output["logprobs"][0]["top_logprobs"]]

    expected = top(next_logprobs(hf.model.layers[TRANSCODER_LAYER].mlp))
    assert [t for t, _ in served(steered)] == [t for t, _ in expected]
    for (_, got), (_, want) in zip(served(steered), expected, strict=True):
        assert abs(got - want) < 1e-3, (served(steered), expected)
    unsteered = top(next_logprobs(None))
    assert [t for t, _ in served(default)] == [t for t, _ in unsteered]
    assert served(steered) != served(default)  # the feature changed the output


def test_concurrent_burst_equals_sequential(server: tuple[str, object]) -> None:
    base, app = server
    prompts = [f"Sample text number {i}: " + "the cat sat on the mat " * (i + 1) for i in range(8)]

    def body(p: str) -> dict:
        return {
            "prompt": p,
            "model": MODEL,
            "source_set": "res-it",
            "selected_sources": [],
            "sort_by_token_indexes": [],
            "ignore_bos": True,
            "num_results": 8,
        }

    sequential = [_post(base, "/v1/activation/all", body(p)).json() for p in prompts]

    async def burst() -> list[dict]:
        async with httpx.AsyncClient(headers={"X-SECRET-KEY": SECRET}, timeout=120) as client:
            rs = await asyncio.gather(
                *(client.post(f"{base}/v1/activation/all", json=body(p)) for p in prompts)
            )
            return [r.json() for r in rs]

    before = app.state.engine.batcher.batches_run
    together = asyncio.run(burst())
    assert app.state.engine.batcher.batches_run - before < len(prompts)
    for seq, par in zip(sequential, together, strict=True):
        assert [a["index"] for a in par["activations"]] == [a["index"] for a in seq["activations"]]
        for a, b in zip(par["activations"], seq["activations"], strict=True):
            assert a["values"] == pytest.approx(b["values"], rel=1e-3, abs=1e-3)


def test_bad_inputs_on_real_server(server: tuple[str, object]) -> None:
    base, _ = server
    r = _post(
        base,
        "/v1/activation/all",
        {"prompt": "word " * 300, "model": MODEL, "source_set": "res-it"},
    )
    assert r.status_code == 400 and "256" in r.json()["detail"]
    r = httpx.post(f"{base}/v1/tokenize", json={"model": MODEL, "text": "x"})
    assert r.status_code == 401
    r = _post(base, "/v1/tokenize", {"model": MODEL, "text": "still serving"})
    assert r.status_code == 200


def test_fast_lens_readout_matches_float32(server: tuple[str, object]) -> None:
    """The bf16 lens read-out (candidates in bf16, re-ranked in float32) against the plain
    float32 one over every layer of real 64-token corpus prompts: the same top tokens in
    the same order (two tokens may swap only where float32 itself cannot tell them apart:
    logits within 1e-4, which two float32 kernels round differently) and probabilities
    within 0.005."""
    from interpedia_inference.lens import LensReadout, word_mask

    _, app = server
    engine = app.state.engine
    fast = LensReadout(engine)
    if not fast.fast:
        pytest.skip("no native bf16 matmul here: the lens reads out in float32 only")
    exact = LensReadout(engine)
    exact.fast = False
    layers = list(range(engine.model.n_layers))
    corpus = sorted((ROOT / ".cache/corpora/sotu").glob("*.txt"))
    for path in corpus[:: len(corpus) // 4][:4]:  # 1790, 1848, 1906, 1963
        ids = engine.model.tokenize(path.read_text())[:64]
        hidden, logits = fast.residuals(ids)
        fast_probs, fast_ids = fast.top(hidden, logits, layers, slice(0, 64), 10)
        exact_probs, exact_ids = exact.top(hidden, logits, layers, slice(0, 64), 10)
        for layer, position in (fast_ids != exact_ids).any(-1).nonzero().tolist():
            normed = exact.norm(hidden[layer + 1][0, position])
            a, b = (
                exact.unembed(normed)[found[layer, position]] for found in (fast_ids, exact_ids)
            )
            assert float((a - b).abs().max()) < 1e-4, (path.name, layer, position)
        assert float((fast_probs - exact_probs).abs().max()) < 0.005, path.name
        assert float((fast_probs - exact_probs).abs().mean()) < 1e-4
    # with Neuronpedia's non-word filter: word-like candidates only, the same answer
    keep = word_mask(engine)
    fast_probs, fast_ids = fast.top(hidden, logits, layers, slice(0, 64), 10, keep)
    exact_probs, exact_ids = exact.top(hidden, logits, layers, slice(0, 64), 10, keep)
    assert torch.equal(fast_ids, exact_ids) and bool(keep[fast_ids[:-1]].all())
    assert torch.allclose(fast_probs, exact_probs, atol=1e-2, rtol=3e-2)


def test_heavy_lens_steering_stays_finite(server: tuple[str, object]) -> None:
    """Strength 3 at all 30 layers once overflowed float32 (the residual grew ~4x a layer,
    its norm reached inf, then NaN probabilities were sent as null): each layer's step is
    capped at the residual's norm, as Neuronpedia caps it, so every probability is a
    number and any strength beyond 1 reads as 1."""
    base, _ = server
    body = {
        "model": MODEL,
        "prompt": PROMPT,
        "stream": False,
        "top_n": 5,
        "steer_tokens": [{"token": " London"}],
    }
    runs = {}
    for strength in (3, 1, -3):
        r = _post(base, "/v1/lens/prompt", {**body, "steer_strength": strength})
        assert r.status_code == 200, r.text
        runs[strength] = [t["results"][0] for t in r.json()["tokens"]]
        probs = torch.tensor([result["top_probs"] for result in runs[strength]])  # [P, L, N]
        assert probs.shape[1] == 30 and bool(probs.isfinite().all())
        assert bool((probs > 0).all()) and bool((probs.sum(-1) <= 1 + 1e-4).all())
    assert runs[3] == runs[1] and runs[-3] != runs[3]


def test_lens_steering_leaves_the_bos_position_alone(server: tuple[str, object]) -> None:
    """As Neuronpedia's lens: steering edits every prompt position but BOS (the attention
    sink, whose huge norm makes a norm-relative step huge), so BOS reads out exactly as
    unsteered at every layer while every later position moves."""
    base, app = server
    body = {"model": MODEL, "prompt": PROMPT, "stream": False, "top_n": 5}
    steer = {"steer_tokens": [{"token": " London"}], "steer_strength": 1}
    plain, steered = (_post(base, "/v1/lens/prompt", {**body, **extra}) for extra in ({}, steer))
    assert plain.status_code == 200 and steered.status_code == 200, steered.text
    plain_tokens, steered_tokens = plain.json()["tokens"], steered.json()["tokens"]
    bos = app.state.engine.model.bos_token_id  # type: ignore[attr-defined]
    assert plain_tokens[0]["id"] == bos and plain.json()["meta"]["prepend_bos"]
    assert steered_tokens[0]["results"] == plain_tokens[0]["results"]
    for before, after in zip(plain_tokens[1:], steered_tokens[1:], strict=True):
        assert after["results"] != before["results"], after["position"]
