"""The runtime's promises: the TransformerLens wrapper computes what Hugging Face computes,
hooks stop early, SAE sources load, encode and evict as configured."""

import os

import pytest
import torch

from interpedia_core.errors import NotFound
from interpedia_runtime.models import LoadedModel, load_model, resolve_model, tiny_random_model
from interpedia_runtime.saes import SaeRegistry, encode_tokens, save_random_sae


@pytest.fixture(scope="module")
def tiny() -> LoadedModel:
    return tiny_random_model()


def _hf_log_probs(model: LoadedModel, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.log_softmax(model.hf_model(tokens).logits.float(), dim=-1)


def test_wrapped_log_probs_equal_hf(tiny: LoadedModel) -> None:
    tokens = torch.tensor([tiny.tokenize("The quick brown fox jumps over the lazy dog")])
    assert torch.allclose(tiny.log_probs(tokens), _hf_log_probs(tiny, tokens), atol=1e-4)


def test_hooks_have_user_names_and_shapes(tiny: LoadedModel) -> None:
    tokens = torch.tensor([tiny.tokenize("Hello world")])
    hooks = [
        "blocks.0.hook_resid_pre",
        "blocks.0.hook_resid_post",
        "blocks.1.mlp.hook_post",
        "blocks.1.attn.hook_z",
    ]
    acts = tiny.run_hooks(tokens, hooks)
    seq = tokens.shape[1]
    assert acts["blocks.0.hook_resid_pre"].shape == (1, seq, tiny.d_model)
    assert acts["blocks.1.mlp.hook_post"].shape == (1, seq, tiny.d_mlp)
    assert acts["blocks.1.attn.hook_z"].shape == (1, seq, tiny.n_heads * tiny.d_head)
    with pytest.raises(NotFound):
        tiny.run_hooks(tokens, ["blocks.9.hook_resid_post"])


def test_the_last_blocks_hooks_equal_a_whole_forwards(tiny: LoadedModel) -> None:
    """Hooks of the last block stop before the head; a head hook still runs it."""
    tokens = torch.tensor([tiny.tokenize("The quick brown fox")])
    last = f"blocks.{tiny.n_layers - 1}.hook_resid_post"
    _, whole = tiny.bridge.run_with_cache(tokens, names_filter=[last, "ln_final.hook_normalized"])
    assert torch.equal(tiny.run_hooks(tokens, [last])[last], whole[last])
    head = tiny.run_hooks(tokens, [last, "ln_final.hook_normalized"])
    assert torch.equal(head["ln_final.hook_normalized"], whole["ln_final.hook_normalized"])


def test_generation_view_shares_the_bridge_weights(tiny: LoadedModel) -> None:
    """`hf_model` and the bridge are two module trees over one set of weights."""
    bridged = {p.data_ptr() for p in tiny.bridge.parameters()}
    for name, parameter in tiny.hf_model.named_parameters():
        assert parameter.data_ptr() in bridged, f"{name} is a copy"
    # Still two trees: the bridge rewires its modules, generation uses the plain ones.
    assert type(tiny.hf_model.model.layers[0]).__name__ == "LlamaDecoderLayer"
    with torch.no_grad():  # a change through one view is seen by the other
        embed = tiny.hf_model.get_input_embeddings().weight
        before = float(embed[5, 0])
        embed[5, 0] += 1.0
        tokens = torch.tensor([[tiny.bos_token_id, 5]])
        plain = tiny.hf_model(tokens).logits
        wrapped = tiny.bridge(tokens, return_type="logits")
        embed[5, 0] = before
    assert torch.allclose(plain, wrapped, atol=1e-4)


def test_tokenize_prepends_bos(tiny: LoadedModel) -> None:
    ids = tiny.tokenize("Hello")
    assert ids[0] == tiny.bos_token_id
    assert tiny.tokenize("Hello", prepend_bos=False)[0] != tiny.bos_token_id


def test_resolve_model_ids(tmp_path: os.PathLike[str]) -> None:
    assert resolve_model("smollm2-135m").packaged
    assert resolve_model("gpt2-small").hf_id == "gpt2"
    assert resolve_model(str(tmp_path)).hf_id == str(tmp_path)


@pytest.mark.parametrize("architecture", ["standard", "topk"])
def test_sae_registry_loads_encodes_and_evicts(
    tiny: LoadedModel, tmp_path: os.PathLike[str], architecture: str
) -> None:
    root = str(tmp_path)
    for layer in (0, 1):
        save_random_sae(
            f"{root}/l{layer}",
            d_in=tiny.d_model,
            d_sae=128,
            hook_name=f"blocks.{layer}.hook_resid_post",
            architecture=architecture,
            k=8,
        )
    registry = SaeRegistry(tiny, max_loaded_saes=1)
    registry.add_source(f"{root}/l0", "res-t")
    registry.add_source(f"{root}/l1", "res-t")
    assert registry.sources_in_set("res-t") == ["0-res-t", "1-res-t"]
    sae0 = registry.get("0-res-t")
    sae1 = registry.get("1-res-t")
    assert registry.loaded_ids() == ["1-res-t"]
    tokens = torch.tensor([tiny.tokenize("Hello there, friend")])
    feats = encode_tokens(tiny, [sae0, sae1], tokens)
    resid = tiny.run_hooks(tokens, ["blocks.1.hook_resid_post"])["blocks.1.hook_resid_post"]
    assert feats["1-res-t"].shape == (1, tokens.shape[1], 128)
    assert torch.allclose(feats["1-res-t"], sae1.sae.encode(resid), atol=1e-5)
    with pytest.raises(NotFound):
        registry.get("7-res-t")
    with pytest.raises(NotFound):
        sae0.decoder_vector(128)


def test_neurons_source_is_identity_on_mlp_post(tiny: LoadedModel) -> None:
    registry = SaeRegistry(tiny)
    neurons = registry.get("1-neurons")
    tokens = torch.tensor([tiny.tokenize("Hello")])
    feats = encode_tokens(tiny, [neurons], tokens)["1-neurons"]
    post = tiny.run_hooks(tokens, ["blocks.1.mlp.hook_post"])["blocks.1.mlp.hook_post"]
    assert torch.equal(feats, post)
    assert neurons.decoder_vector(3)[3] == 1.0


@pytest.mark.slow
def test_packaged_model_log_probs_equal_hf() -> None:
    model = load_model("smollm2-135m")
    tokens = torch.tensor([model.tokenize("Interpretability lets us read what a model computes.")])
    assert model.n_layers == 30 and model.d_model == 576
    assert torch.allclose(model.log_probs(tokens), _hf_log_probs(model, tokens), atol=1e-4)
