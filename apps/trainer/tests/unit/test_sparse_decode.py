"""The fast steps must match SAELens's `training_forward_pass` in loss and gradients."""

import pytest
import torch
from sae_lens.saes.sae import TrainStepInput

from interpedia_trainer.architectures import ArchitectureOptions, build_training_sae
from interpedia_trainer.sparse_decode import (
    dense_standard_training_step,
    sparse_topk_training_step,
)

TOPK_FAMILY = ["topk", "batchtopk", "matryoshka_batchtopk"]


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


def _build(architecture: str, **options):
    torch.manual_seed(0)
    widths = (12, 40, 96) if architecture == "matryoshka_batchtopk" else None
    sae = build_training_sae(
        architecture, 24, 96, options=ArchitectureOptions(matryoshka_widths=widths, **options)
    )
    _randomise(sae)
    return sae


def _dead_mask(kind: str) -> torch.Tensor | None:
    if kind == "none":
        return None
    if kind == "few":  # fewer dead than k_aux (12): all of them reconstruct the residual
        return torch.arange(96) % 16 == 0
    return torch.arange(96) % 3 != 0  # many: each token's top k_aux of the dead ones


@pytest.mark.parametrize("architecture", TOPK_FAMILY)
@pytest.mark.parametrize("dead_kind", ["none", "few", "many"])
def test_sparse_topk_matches_saelens(architecture: str, dead_kind: str) -> None:
    sae = _build(architecture, k=5)
    x = torch.randn(64, 24) * 2
    dead = _dead_mask(dead_kind)
    is_batch = architecture != "topk"
    if is_batch:
        threshold_before = sae.topk_threshold.clone()
    ref, ref_grads = _reference(sae, x, dead, {})
    if is_batch:
        ref_threshold = sae.topk_threshold.clone()
        sae.topk_threshold = threshold_before

    result = sparse_topk_training_step(sae, x, dead)
    assert result.loss == pytest.approx(float(ref.loss.detach()), rel=1e-5)
    assert set(result.losses) == set(ref.losses)
    for name, value in ref.losses.items():
        assert result.losses[name] == pytest.approx(float(value), rel=1e-5, abs=1e-7)
    if dead_kind != "none":
        assert result.losses["auxiliary_reconstruction_loss"] > 0
    torch.testing.assert_close(result.sae_out, ref.sae_out.detach(), rtol=1e-5, atol=1e-5)
    for name, param in sae.named_parameters():
        torch.testing.assert_close(param.grad, ref_grads[name], rtol=1e-4, atol=1e-6)
    fired = (ref.feature_acts > 0).sum(0)
    assert torch.equal(result.fired, fired)
    if is_batch:
        torch.testing.assert_close(sae.topk_threshold, ref_threshold)


@pytest.mark.parametrize("architecture", TOPK_FAMILY)
def test_sparse_step_reconstructs_a_target_other_than_its_input(architecture: str) -> None:
    """A transcoder's step: encode x, decode towards another tensor (AuxK included)."""
    sae = _build(architecture, k=5)
    x, target = torch.randn(64, 24) * 2, torch.randn(64, 24)
    dead = _dead_mask("many")
    before = sae.topk_threshold.clone() if architecture != "topk" else None

    sae.zero_grad()
    feature_acts, hidden_pre = sae.encode_with_hidden_pre(x)
    sae_out = sae.decode(feature_acts)
    mse = (sae_out - target).pow(2).sum(-1).mean()
    aux = sae.calculate_topk_aux_loss(target, sae_out, hidden_pre, dead)
    (mse + aux).backward()
    ref_grads = {n: p.grad.clone() for n, p in sae.named_parameters()}
    sae.zero_grad()
    if before is not None:
        sae.topk_threshold = before

    result = sparse_topk_training_step(sae, x, dead, target=target)
    assert result.losses["mse_loss"] == pytest.approx(float(mse), rel=1e-5)
    assert result.losses["auxiliary_reconstruction_loss"] == pytest.approx(float(aux), rel=1e-5)
    torch.testing.assert_close(result.sae_out, sae_out.detach(), rtol=1e-5, atol=1e-5)
    if architecture == "matryoshka_batchtopk":
        return  # the inner losses add gradient that this plain reference leaves out
    for name, param in sae.named_parameters():
        torch.testing.assert_close(param.grad, ref_grads[name], rtol=1e-4, atol=1e-6)


def test_aux_k_off_leaves_the_dead_latents_alone() -> None:
    sae = _build("topk", k=5, aux_loss_coefficient=0.0)
    dead = _dead_mask("many")
    result = sparse_topk_training_step(sae, torch.randn(64, 24), dead)
    assert result.losses["auxiliary_reconstruction_loss"] == 0
    never_chosen = dead & (result.fired == 0)
    assert never_chosen.any()
    assert float(sae.W_dec.grad[never_chosen].abs().max()) == 0.0


@pytest.mark.parametrize("with_target", [False, True])
def test_dense_standard_matches_saelens(with_target: bool) -> None:
    torch.manual_seed(0)
    sae = build_training_sae("standard", 24, 96, options=ArchitectureOptions(l1_coefficient=3.0))
    _randomise(sae)
    x = torch.randn(64, 24) * 2
    target = torch.randn(64, 24) if with_target else x
    sae.zero_grad()
    feature_acts, _ = sae.encode_with_hidden_pre(x)
    sae_out = sae.decode(feature_acts)
    mse = (sae_out - target).pow(2).sum(-1).mean()
    l1 = 3.0 * (feature_acts * sae.W_dec.norm(dim=1)).sum(-1).mean()
    (mse + l1).backward()
    ref_grads = {n: p.grad.clone() for n, p in sae.named_parameters()}
    if not with_target:  # and the plain reference is SAELens's own pass
        ref, ref_grads = _reference(sae, x, None, {"l1": 3.0})
        assert float(ref.loss) == pytest.approx(float(mse + l1), rel=1e-5)
    sae.zero_grad()

    result = dense_standard_training_step(sae, x, 3.0, target=target if with_target else None)
    assert result.loss == pytest.approx(float(mse + l1), rel=1e-5)
    assert result.losses["l1_loss"] == pytest.approx(float(l1), rel=1e-5)
    torch.testing.assert_close(result.sae_out, sae_out.detach(), rtol=1e-5, atol=1e-5)
    for name, param in sae.named_parameters():
        torch.testing.assert_close(param.grad, ref_grads[name], rtol=1e-4, atol=1e-6)


def test_sparse_decode_matches_dense_decode() -> None:
    """The gathered decode equals SAELens's dense `decode` on the same activations."""
    sae = _build("topk", k=4)
    x = torch.randn(32, 24)
    dense = sae.decode(sae.encode(x))
    result = sparse_topk_training_step(sae, x, None)
    torch.testing.assert_close(result.sae_out, dense.detach(), rtol=1e-5, atol=1e-5)
