"""Our TopK-family SAEs as SAELens loads them: right architecture, the same encode.

BatchTopK and Matryoshka BatchTopK train with a batch-level top-k and save as JumpReLU
with the learned threshold (SAELens's convention); the input scale and the decoder
norms are folded into the saved weights. SAELens's `SAE.load_from_disk` must read the
folder back and encode raw activations exactly as the trained SAE does.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from sae_lens import SAE

from interpedia_core.errors import InvalidInput
from interpedia_trainer.architectures import (
    ArchitectureOptions,
    default_matryoshka_widths,
    validate_architecture,
)
from interpedia_trainer.training import SAETrainingLoop, TrainingConfig

D_IN, D_SAE = 24, 96


def _batches(batch: int, seed: int) -> Iterator[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(64, D_IN, generator=g) * 5  # far from unit norm: a real scale
    while True:
        active = torch.rand(batch, 64, generator=g) < 0.05
        yield (active * torch.rand(batch, 64, generator=g)) @ directions + 3.0


def _our_encode(loop: SAETrainingLoop, x: torch.Tensor) -> torch.Tensor:
    """The trained SAE's own activations for raw `x`, in raw units.

    Training ranks pre · ‖W_dec‖ (the size of a latent's contribution in scaled input
    units); dividing by the input scale s gives its size in raw units, which is what a
    saved SAE with unit decoder rows reports.
    """
    sae, s = loop.sae, loop.scaler.scaling_factor
    with torch.no_grad():
        pre = (x * s - sae.b_dec) @ sae.W_enc + sae.b_enc
        scaled = pre * sae.W_dec.norm(dim=-1)  # what the TopK family ranks
        if loop.cfg.architecture == "topk":
            top = scaled.topk(int(loop.cfg.k), dim=-1)
            acts = torch.zeros_like(scaled).scatter(-1, top.indices, top.values.relu())
        else:
            acts = scaled * (scaled > sae.topk_threshold)
        return acts / s


@pytest.mark.parametrize(
    ("architecture", "saved_as"),
    [("batchtopk", "jumprelu"), ("matryoshka_batchtopk", "jumprelu"), ("topk", "topk")],
)
def test_saelens_loads_ours_and_encodes_the_same(architecture, saved_as, tmp_path: Path):
    torch.set_flush_denormal(True)
    cfg = TrainingConfig(
        d_in=D_IN,
        d_sae=D_SAE,
        architecture=architecture,
        k=4,
        lr=1e-2,
        batch_size=256,
        total_tokens=256 * 60,
        normalize_activations="expected_average_only_in",
        n_batches_for_norm_estimate=2,
        dead_feature_window=5,
        hook_name="blocks.0.hook_resid_post",
    )
    loop = SAETrainingLoop(cfg, tmp_path)
    loop.run(_batches(256, seed=0))
    assert loop.scaler.scaling_factor is not None and abs(loop.scaler.scaling_factor - 1) > 0.1

    loaded = SAE.load_from_disk(tmp_path)
    assert loaded.cfg.architecture() == saved_as
    metadata = json.loads((tmp_path / "cfg.json").read_text())["metadata"]
    assert metadata["training_architecture"] == architecture
    if architecture == "matryoshka_batchtopk":
        widths = metadata["training_architecture_details"]["matryoshka_widths"]
        assert widths == list(default_matryoshka_widths(D_SAE)) == [24, 48, D_SAE]

    x = next(_batches(2048, seed=1))
    ours = _our_encode(loop, x)
    theirs = loaded.encode(x)
    assert 1 <= float((ours > 0).float().sum(-1).mean()) < D_SAE / 4  # sparse, and it fires
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)
    # Decoding gives training's reconstruction (in scaled units) divided by s.
    with torch.no_grad():
        sae, s = loop.sae, loop.scaler.scaling_factor
        ours_out = (ours * s / sae.W_dec.norm(dim=-1) @ sae.W_dec + sae.b_dec) / s
    torch.testing.assert_close(loaded.decode(theirs), ours_out, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("architecture", "widths", "message"),
    [
        ("matryoshka_batchtopk", (8, 8, 96), "increase strictly"),
        ("matryoshka_batchtopk", (8, 32), "end at d_sae"),
        ("batchtopk", (8, 96), "is for architecture matryoshka_batchtopk"),
    ],
)
def test_bad_matryoshka_widths_are_refused(architecture, widths, message) -> None:
    options = ArchitectureOptions(k=4, matryoshka_widths=widths)
    with pytest.raises(InvalidInput, match=message):
        validate_architecture(architecture, D_IN, D_SAE, options)
