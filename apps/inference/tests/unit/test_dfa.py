"""Direct feature attribution for an SAE on attention output (attn.hook_z): per source
position, what reaches the feature at its max-activating position through attention."""

import httpx
import pytest
import torch
from fastapi import FastAPI

from interpedia_inference.engine import Engine
from interpedia_runtime.saes import LoadedSae

MODEL = "tiny-random"
PROMPT = "When Mary and John went to the store, John gave a drink to"


def _attention_sae_and_z(
    engine: Engine,
) -> tuple[str, LoadedSae, torch.Tensor, torch.Tensor]:
    """The attention SAE's source and SAE, PROMPT's tokens [1, seq] and its hook_z [seq, 64]."""
    (source,) = engine.registry.specs
    tokens = torch.tensor([engine.tokenize(PROMPT)])
    z = engine.model.run_hooks(tokens, ["blocks.1.attn.hook_z"])["blocks.1.attn.hook_z"][0]
    return source, engine.registry.get(source), tokens, z


async def test_dfa_splits_the_feature_input_over_source_positions(
    attention_sae_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = attention_sae_app
    source, sae, tokens, z = _attention_sae_and_z(app.state.engine)
    index = int(sae.encode(z).max(0).values.argmax())  # a feature that fires here

    r = await client.post(
        "/v1/activation/single",
        json={"prompt": PROMPT, "model": MODEL, "source": source, "index": index},
    )
    assert r.status_code == 200, r.text
    act = r.json()["activation"]
    target = act["dfa_target_index"]
    assert target == act["max_value_index"]
    dfa = torch.tensor(act["dfa_values"])
    assert dfa.shape == (tokens.shape[1],)
    assert torch.all(dfa[target + 1 :] == 0)  # causal: later positions feed nothing
    # The parts add up to the feature's linear input at the target: z[target] · w_enc.
    w = sae.encoder_vector(index)
    assert float(dfa.sum()) == pytest.approx(float(z[target] @ w), abs=1e-4)
    assert act["dfa_max_value"] == pytest.approx(float(dfa.max()), abs=1e-6)

    camel = await client.post(
        "/v1/activation/single",
        json={"prompt": PROMPT, "model": MODEL, "source": source, "index": index},
        headers={"X-Wire-Dialect": "camel"},
    )
    assert camel.json()["activation"]["dfaValues"] == act["dfa_values"]
    assert camel.json()["activation"]["dfaTargetIndex"] == target


async def test_residual_saes_have_no_dfa(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/activation/single",
        json={"prompt": PROMPT, "model": MODEL, "source": "1-res-test", "index": 3},
    )
    assert r.json()["activation"]["dfa_values"] is None


async def test_activation_all_carries_dfa_for_each_feature(
    attention_sae_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = attention_sae_app
    _, sae, _, z = _attention_sae_and_z(app.state.engine)
    r = await client.post(
        "/v1/activation/all",
        json={"prompt": PROMPT, "model": MODEL, "source_set": "att-test", "num_results": 5},
    )
    assert r.status_code == 200, r.text
    features = r.json()["activations"]
    assert features
    for feature in features:
        target = feature["dfa_target_index"]
        assert target == feature["max_value_index"]
        expected = float(z[target] @ sae.encoder_vector(feature["index"]))
        assert sum(feature["dfa_values"]) == pytest.approx(expected, abs=1e-4)
