"""Transcoder sets trained on the packaged model: saved for circuit-tracer and SAELens.

One small set (two layers, a few hundred tokens) is trained once per module; the graph
suite (`apps/graph/tests/integration/test_trained_transcoders.py`) loads the same kind
of set with circuit-tracer in its own environment.
"""

from pathlib import Path

import pytest
import torch
import yaml
from sae_lens import SAE, JumpReLUSkipTranscoder, JumpReLUTranscoder, Transcoder
from safetensors.torch import load_file

from interpedia_core.errors import InvalidInput
from interpedia_formats.transcoder_set import saelens_layer_dir
from interpedia_runtime.saes import SaeRegistry, SaeSpec, encode_tokens
from interpedia_trainer.model_runtime import HookedModel, load_hooked_model
from interpedia_trainer.training import TrainingConfig
from interpedia_trainer.transcoders import (
    TranscoderSetResult,
    parse_layers,
    train_transcoder_set,
)

pytestmark = pytest.mark.slow

LAYERS = [0, 3]


@pytest.fixture(scope="module")
def smollm() -> HookedModel:
    torch.set_flush_denormal(True)
    return load_hooked_model()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tc-corpus")
    (folder / "a.txt").write_text(
        "Mr. Speaker, the state of our Union is strong. We will build roads and schools, "
        "and we will keep our promise to every family in this great nation. " * 30
    )
    return folder


def _train(
    model: HookedModel,
    corpus: Path,
    out: Path,
    activation: str,
    steps: int = 4,
    **options: object,
) -> TranscoderSetResult:
    base = TrainingConfig(
        d_in=model.d_model,
        d_sae=128,
        k=8,
        batch_size=128,
        total_tokens=128 * steps,
        context_size=64,
        log_every_steps=1,
        lr=1e-2,
    )
    return train_transcoder_set(
        base, model, corpus, out, layers=LAYERS, activation=activation, **options
    )


@pytest.fixture(scope="module")
def topk_set(
    smollm: HookedModel, corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> TranscoderSetResult:
    return _train(smollm, corpus, tmp_path_factory.mktemp("sets") / "tc-topk", "topk", steps=12)


def _squared_errors(
    sae: SAE,
    model: HookedModel,
    layer: int,
    text: str = "the state of our Union is strong. We will keep our promise to every family",
) -> tuple[float, float]:
    """(squared error of the transcoder, of the zero predictor) on one text's MLP output
    (a text like the corpus: a few steps of training do not generalise further)."""
    tokens = model.tokenizer(text, return_tensors="pt").input_ids
    hooks = [f"blocks.{layer}.mlp.hook_in", f"blocks.{layer}.mlp.hook_out"]
    x, y = (a[0, 1:] for a in model.loaded.run_hooks(tokens, hooks).values())
    with torch.no_grad():
        return float((sae(x) - y).pow(2).sum()), float(y.pow(2).sum())


def test_the_set_is_in_circuit_tracers_layout(topk_set: TranscoderSetResult) -> None:
    folder = topk_set.folder
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert config["feature_input_hook"] == "mlp.hook_in"
    assert config["feature_output_hook"] == "mlp.hook_out"
    assert config["transcoders"] == ["layer_0.safetensors", "layer_3.safetensors"]
    tensors = load_file(str(folder / "layer_3.safetensors"))
    assert tensors["W_enc"].shape == (128, 576)  # [d_transcoder, d_model]
    assert tensors["W_dec"].shape == (128, 576)
    assert tensors["activation_function.threshold"].shape == (128,)
    assert not folder.with_name("tc-topk.checkpoints").exists()  # work folder cleaned up
    assert topk_set.n_tokens == 128 * 12
    assert 0 < topk_set.forward_share < 1


def test_each_layer_loads_with_saelens_and_predicts_the_mlp_output(
    topk_set: TranscoderSetResult, smollm: HookedModel
) -> None:
    tokens = smollm.tokenizer("The capital of France is Paris.", return_tensors="pt").input_ids
    for layer in LAYERS:
        sae = SAE.load_from_disk(str(saelens_layer_dir(topk_set.folder, layer)))
        assert isinstance(sae, JumpReLUTranscoder)
        assert sae.cfg.metadata.hook_name == f"blocks.{layer}.mlp.hook_in"
        x = smollm.loaded.run_hooks(tokens, [f"blocks.{layer}.mlp.hook_in"])[
            f"blocks.{layer}.mlp.hook_in"
        ][0, 1:]
        # circuit-tracer's file computes the same features as the SAELens folder.
        file = load_file(str(topk_set.folder / f"layer_{layer}.safetensors"))
        pre = x @ file["W_enc"].T + file["b_enc"]
        expected = pre * (pre > file["activation_function.threshold"])
        torch.testing.assert_close(sae.encode(x), expected, atol=1e-5, rtol=1e-5)
        error, zero = _squared_errors(sae, smollm, layer)
        assert error < zero
        metrics = topk_set.per_layer[layer]
        assert metrics["fvu"] < 1  # held out: better than the mean MLP output
        assert 0 < metrics["l0"] < 128
        assert 0 <= metrics["dead_fraction"] <= 1


def test_the_inference_runtime_serves_a_layer(
    topk_set: TranscoderSetResult, smollm: HookedModel
) -> None:
    registry = SaeRegistry(smollm.loaded)
    registry.add(
        SaeSpec(
            source_id="3-tc-topk",
            source_set="tc-topk",
            hook_name="blocks.3.mlp.hook_in",
            layer=3,
            path=str(saelens_layer_dir(topk_set.folder, 3)),
        )
    )
    loaded = registry.get("3-tc-topk")
    tokens = smollm.tokenizer("We will build roads and schools", return_tensors="pt").input_ids
    acts = encode_tokens(smollm.loaded, [loaded], tokens)["3-tc-topk"]
    assert acts.shape == (1, tokens.shape[1], 128)
    assert (acts[0, 1:] > 0).any()


def test_relu_with_skip_saves_skip_transcoders(
    smollm: HookedModel, corpus: Path, tmp_path: Path
) -> None:
    relu = _train(smollm, corpus, tmp_path / "tc-relu", "relu", skip=True)
    sae = SAE.load_from_disk(str(saelens_layer_dir(relu.folder, 0)))
    assert type(sae).__name__ == "SkipTranscoder" and isinstance(sae, Transcoder)
    assert "W_skip" in load_file(str(relu.folder / "layer_0.safetensors"))
    assert not isinstance(sae, JumpReLUSkipTranscoder)
    error, zero = _squared_errors(sae, smollm, 0)
    assert error < zero


def test_jumprelu_trains_with_its_own_sparsity_loss(
    smollm: HookedModel, corpus: Path, tmp_path: Path
) -> None:
    jump = _train(smollm, corpus, tmp_path / "tc-jump", "jumprelu")
    sae = SAE.load_from_disk(str(saelens_layer_dir(jump.folder, 3)))
    assert isinstance(sae, JumpReLUTranscoder)
    error, zero = _squared_errors(sae, smollm, 3)
    assert error < zero


def test_bad_layers_and_activations_are_refused(smollm: HookedModel, corpus: Path) -> None:
    assert parse_layers("all", 30) == list(range(30))
    assert parse_layers("0-2,5", 30) == [0, 1, 2, 5]
    with pytest.raises(InvalidInput, match=r"layer 30 is out of range.*0\.\.29"):
        parse_layers("28-30", 30)
    with pytest.raises(InvalidInput, match="use all"):
        parse_layers("first", 30)
    with pytest.raises(InvalidInput, match="unknown transcoder activation 'gelu'"):
        _train(smollm, corpus, Path("/nonexistent"), "gelu")
