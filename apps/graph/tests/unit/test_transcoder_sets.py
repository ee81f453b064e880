"""Quick transcoder sets: sparse, fitted to the MLP, read back by circuit-tracer."""

from pathlib import Path

import pytest
import torch

from interpedia_core.errors import InvalidInput, NotFound
from interpedia_formats.transcoder_set import write_transcoder_set
from interpedia_graph import transcoder_sets


def _pairs(n_layers: int = 2, n: int = 2000, d_model: int = 16) -> tuple[list, list]:
    """MLP-like pairs: the output is a ReLU of a few input directions, mixed."""
    generator = torch.Generator().manual_seed(1)
    ins, outs = [], []
    for _ in range(n_layers):
        x = torch.randn(n, d_model, generator=generator)
        w = torch.randn(d_model, 64, generator=generator)
        m = torch.randn(64, d_model, generator=generator) / 8
        ins.append(x)
        outs.append(torch.relu(x @ w) @ m)
    return ins, outs


def test_a_quick_fit_is_sparse_and_explains_part_of_the_mlp() -> None:
    ins, outs = _pairs()
    layers = transcoder_sets.fit_quick_transcoders(ins, outs, d_transcoder=256, density=0.05)
    assert len(layers) == 2
    for layer, x, y in zip(layers, ins, outs, strict=True):
        pre = x @ layer["W_enc"].T + layer["b_enc"]
        fired = (pre > layer["activation_function.threshold"]).float().mean(0)  # per feature
        assert fired.mean().item() == pytest.approx(0.05, abs=0.01)
        fvu = transcoder_sets.fraction_of_variance_unexplained(layer, x, y)
        assert 0 < fvu < 0.9  # random directions, fitted decoder: some of the variance


def test_the_fvu_counts_a_skip_connection_and_reads_relu_sets() -> None:
    """A set whose skip is the exact linear map explains everything through the skip."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(200, 16, generator=generator)
    w_skip = torch.randn(16, 16, generator=generator)
    layer = {  # ReLU transcoder (no threshold) whose features add nothing
        "W_enc": torch.randn(8, 16, generator=generator),
        "b_enc": torch.zeros(8),
        "W_dec": torch.zeros(8, 16),
        "b_dec": torch.zeros(16),
    }
    y = x @ w_skip.T
    assert transcoder_sets.fraction_of_variance_unexplained(layer, x, y) > 0.9
    layer["W_skip"] = w_skip
    assert transcoder_sets.fraction_of_variance_unexplained(layer, x, y) < 1e-6


def test_a_written_set_loads_as_circuit_tracers_transcoder_set(tmp_path: Path) -> None:
    ins, outs = _pairs(n_layers=3)
    layers = transcoder_sets.fit_quick_transcoders(ins, outs, d_transcoder=32, density=0.1)
    folder = write_transcoder_set(tmp_path / "tc-unit", layers, scan="tc-unit", model_name="m")
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.yaml",
        "layer_0.safetensors",
        "layer_1.safetensors",
        "layer_2.safetensors",
    ]
    loaded = transcoder_sets.load_transcoder_set(folder)
    assert loaded.n_layers == 3 and loaded.d_transcoder == 32
    assert loaded.feature_input_hook == "mlp.hook_in"
    assert loaded.feature_output_hook == "mlp.hook_out"
    first = loaded[0]
    torch.testing.assert_close(first.W_dec.data, layers[0]["W_dec"])
    torch.testing.assert_close(
        first.activation_function.threshold.data, layers[0]["activation_function.threshold"]
    )
    # The same activations as the fit: JumpReLU at the fitted thresholds.
    acts = first.encode(ins[0][:5])
    pre = ins[0][:5] @ layers[0]["W_enc"].T
    torch.testing.assert_close(acts, pre * (pre > layers[0]["activation_function.threshold"]))


def test_writing_again_replaces_the_set_whole(tmp_path: Path) -> None:
    ins, outs = _pairs(n_layers=2)
    small = transcoder_sets.fit_quick_transcoders(ins, outs, d_transcoder=8, density=0.2)
    write_transcoder_set(tmp_path / "s", small * 2, scan="s", model_name="m")
    write_transcoder_set(tmp_path / "s", small, scan="s", model_name="m")
    assert transcoder_sets.load_transcoder_set(tmp_path / "s").n_layers == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_bad_sets_and_densities_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no transcoder set"):
        transcoder_sets.load_transcoder_set(tmp_path)
    ins, outs = _pairs(n_layers=1)
    with pytest.raises(InvalidInput, match="density"):
        transcoder_sets.fit_quick_transcoders(ins, outs, d_transcoder=8, density=1.5)


def test_a_set_with_a_gap_in_its_layers_is_refused(tmp_path: Path) -> None:
    ins, outs = _pairs(n_layers=2)
    layers = transcoder_sets.fit_quick_transcoders(ins, outs, d_transcoder=8, density=0.2)
    write_transcoder_set(tmp_path / "gap", {0: layers[0], 2: layers[1]}, scan="g", model_name="m")
    with pytest.raises(InvalidInput, match=r"covers layers \[0, 2\].*--layers all"):
        transcoder_sets.load_transcoder_set(tmp_path / "gap")
