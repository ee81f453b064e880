"""The fast steps must match SAELens's `training_forward_pass` in loss and gradients."""

import pytest
import torch
from sae_lens.saes.sae import TrainStepInput

from interpedia_trainer.architectures import build_training_sae
from interpedia_trainer.sparse_decode import (
    dense_standard_training_step,
    sparse_topk_training_step,
)


def _reference(sae, x, dead, coefficients):
    sae.zero_grad()
    out = sae.training_forward_pass(
        TrainStepInput(
            sae_in=x,
            coefficients=coefficients,
            dead_neuron_mask=dead,
            n_training_steps=0,
            is_logging_step=False,
        )
    )
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in sae.named_parameters()}
    sae.zero_grad()
    return out, grads


def _randomise(sae):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(torch.randn_like(p) * 0.1)


@pytest.mark.parametrize("architecture", ["topk", "batchtopk"])
@pytest.mark.parametrize("with_dead", [False, True])
def test_sparse_topk_matches_saelens(architecture: str, with_dead: bool) -> None:
    torch.manual_seed(0)
    sae = build_training_sae(architecture, 24, 96, k=5)
    _randomise(sae)
    x = torch.randn(64, 24) * 2
    dead = (torch.arange(96) % 3 == 0) if with_dead else None
    if architecture == "batchtopk":
        threshold_before = sae.topk_threshold.clone()
    ref, ref_grads = _reference(sae, x, dead, {})
    if architecture == "batchtopk":
        ref_threshold = sae.topk_threshold.clone()
        sae.topk_threshold = threshold_before

    result = sparse_topk_training_step(sae, x, dead)
    assert result.loss == pytest.approx(float(ref.loss), rel=1e-5)
    for name, value in ref.losses.items():
        assert result.losses[name] == pytest.approx(float(value), rel=1e-5, abs=1e-7)
    torch.testing.assert_close(result.sae_out, ref.sae_out.detach(), rtol=1e-5, atol=1e-5)
    for name, param in sae.named_parameters():
        torch.testing.assert_close(param.grad, ref_grads[name], rtol=1e-4, atol=1e-6)
    fired = (ref.feature_acts > 0).sum(0)
    assert torch.equal(result.fired, fired)
    if architecture == "batchtopk":
        torch.testing.assert_close(sae.topk_threshold, ref_threshold)


def test_dense_standard_matches_saelens() -> None:
    torch.manual_seed(0)
    sae = build_training_sae("standard", 24, 96, l1_coefficient=3.0)
    _randomise(sae)
    x = torch.randn(64, 24) * 2
    ref, ref_grads = _reference(sae, x, None, {"l1": 3.0})
    result = dense_standard_training_step(sae, x, 3.0)
    assert result.loss == pytest.approx(float(ref.loss), rel=1e-5)
    assert result.losses["l1_loss"] == pytest.approx(float(ref.losses["l1_loss"]), rel=1e-5)
    torch.testing.assert_close(result.sae_out, ref.sae_out.detach(), rtol=1e-5, atol=1e-5)
    for name, param in sae.named_parameters():
        torch.testing.assert_close(param.grad, ref_grads[name], rtol=1e-4, atol=1e-6)


def test_sparse_decode_matches_dense_decode() -> None:
    """The gathered decode equals SAELens's dense `decode` on the same activations."""
    torch.manual_seed(0)
    sae = build_training_sae("topk", 16, 64, k=4)
    _randomise(sae)
    x = torch.randn(32, 16)
    dense = sae.decode(sae.encode(x))
    result = sparse_topk_training_step(sae, x, None)
    torch.testing.assert_close(result.sae_out, dense.detach(), rtol=1e-5, atol=1e-5)
