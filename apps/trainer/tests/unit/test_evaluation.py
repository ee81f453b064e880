"""Core evaluation numbers equal a brute-force computation on a small SAE and model.

The evaluation streams over batches, splits the set into CE and reconstruction-only
contexts and accumulates sums; the brute force runs every context at once, in float64,
straight from the definitions (SAELens's `evals.py`), with its own hooks.
"""

import math
from pathlib import Path

import pytest
import torch
from sae_lens import SAE

from interpedia_core.errors import InvalidInput
from interpedia_runtime.saes import save_random_sae
from interpedia_trainer.corpus import tail_contexts
from interpedia_trainer.evaluation import EvaluationSet, evaluate_core
from interpedia_trainer.metrics import reconstruction_metrics
from interpedia_trainer.model_runtime import tiny_hooked_model

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def model():
    return tiny_hooked_model()


@pytest.fixture(scope="module")
def sae(model, tmp_path_factory) -> SAE:
    folder = save_random_sae(
        tmp_path_factory.mktemp("sae") / "topk",
        d_in=model.d_model,
        d_sae=96,
        hook_name=HOOK,
        architecture="topk",
        k=6,
        model_name="tiny-random",
    )
    loaded = SAE.load_from_disk(folder)
    with torch.no_grad():  # a bias, so reconstructions are not plain projections
        loaded.b_dec.copy_(torch.linspace(-0.5, 0.5, model.d_model))
    return loaded


def _tokens(model) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(200, 2000, (6, 16), generator=g)
    tokens[:, 0] = model.tokenizer.bos_token_id
    tokens[2, 7] = model.tokenizer.eos_token_id  # a document boundary inside a context
    return tokens


@torch.no_grad()
def _brute_force(model, sae, tokens: torch.Tensor, n_ce: int) -> dict[str, float]:
    special = torch.tensor(model.special_token_ids)
    keep = ~torch.isin(tokens, special)
    acts = model.forward_to_hook(tokens, HOOK).double()  # [n, T, d]
    x = acts[keep]
    feats = sae.encode(x.float()).double()
    x_hat = sae.decode(feats.float()).double()
    residual = (x - x_hat).pow(2).sum(-1)
    density = (feats != 0).double().mean(0)
    out = {
        "explained_variance": float(1 - residual.mean() / (x - x.mean(0)).pow(2).sum(-1).mean()),
        "mse": float(residual.mean()),
        "cossim": float(torch.nn.functional.cosine_similarity(x, x_hat, dim=-1).mean()),
        "l2_ratio": float((x_hat.norm(dim=-1) / x.norm(dim=-1)).mean()),
        "relative_reconstruction_bias": float(
            x_hat.norm(dim=-1).pow(2).mean() / (x * x_hat).sum(-1).mean()
        ),
        "l0": float((feats != 0).double().sum(-1).mean()),
        "l1": float(feats.abs().sum(-1).mean()),
        "frac_alive": float((density > 0).double().mean()),
        "freq_over_1_percent": float((density > 0.01).double().mean()),
    }

    ce_tokens, ce_keep = tokens[:n_ce], keep[:n_ce]

    def run(edit):
        def hook(acts, hook):
            return edit(acts) if edit else None

        return model.bridge.run_with_hooks(ce_tokens, fwd_hooks=[(HOOK, hook)]).double()

    def splice(acts):
        flat = acts.reshape(-1, acts.shape[-1])
        recon = sae.decode(sae.encode(flat)).reshape(acts.shape)
        return torch.where(ce_keep[..., None], recon, acts)

    def ablate(acts):
        return torch.where(ce_keep[..., None], torch.zeros_like(acts), acts)

    mask = ce_keep[:, :-1]
    targets = ce_tokens[:, 1:][mask]
    log_p = torch.log_softmax(run(None)[:, :-1][mask], -1)
    for name, edit in (("sae", splice), ("ablation", ablate)):
        log_q = torch.log_softmax(run(edit)[:, :-1][mask], -1)
        out[f"ce_loss_with_{name}"] = float(
            torch.nn.functional.nll_loss(log_q, targets, reduction="mean")
        )
        out[f"kl_div_with_{name}"] = float((log_p.exp() * (log_p - log_q)).sum(-1).mean())
    out["ce_loss_without_sae"] = float(torch.nn.functional.nll_loss(log_p, targets))
    out["n_ce"] = int(mask.sum())
    out["n_tokens"] = int(keep.sum())
    return out


def test_core_metrics_equal_a_brute_force_computation(model, sae) -> None:
    tokens = _tokens(model)
    # A batch of 4 with 3 CE contexts: one batch mixes CE and reconstruction-only contexts.
    spec = EvaluationSet(n_contexts=6, n_ce_contexts=3, context_size=16, batch_size=4)
    output = evaluate_core(model, sae, tokens, spec, corpus="synthetic")
    metrics = output["eval_result_metrics"]
    expected = _brute_force(model, sae, tokens, n_ce=3)

    def close(actual: float, wanted: float) -> None:
        assert actual == pytest.approx(wanted, rel=1e-4, abs=1e-6)

    for group, name in (
        ("reconstruction_quality", "explained_variance"),
        ("reconstruction_quality", "mse"),
        ("reconstruction_quality", "cossim"),
        ("shrinkage", "l2_ratio"),
        ("shrinkage", "relative_reconstruction_bias"),
        ("sparsity", "l0"),
        ("sparsity", "l1"),
        ("misc_metrics", "frac_alive"),
        ("misc_metrics", "freq_over_1_percent"),
        ("model_performance_preservation", "ce_loss_with_sae"),
        ("model_performance_preservation", "ce_loss_with_ablation"),
        ("model_performance_preservation", "ce_loss_without_sae"),
        ("model_behavior_preservation", "kl_div_with_sae"),
        ("model_behavior_preservation", "kl_div_with_ablation"),
    ):
        close(metrics[group][name], expected[name])
    perf = metrics["model_performance_preservation"]
    close(
        perf["ce_loss_score"],
        (expected["ce_loss_with_ablation"] - expected["ce_loss_with_sae"])
        / (expected["ce_loss_with_ablation"] - expected["ce_loss_without_sae"]),
    )
    close(perf["ce_loss_delta"], expected["ce_loss_with_sae"] - expected["ce_loss_without_sae"])
    misc = metrics["misc_metrics"]
    close(misc["frac_dead"], 1 - expected["frac_alive"])
    assert metrics["token_stats"] == {
        "total_tokens_eval_reconstruction": expected["n_ce"],
        "total_tokens_eval_sparsity_variance": expected["n_tokens"],
    }
    histogram = output["eval_result_unstructured"]["feature_density_histogram"]
    assert sum(histogram["counts"]) + histogram["dead"] == sae.cfg.d_sae
    assert histogram["dead"] == round(misc["frac_dead"] * sae.cfg.d_sae)
    assert output["eval_type_id"] == "core" and output["sae_cfg_dict"]["d_sae"] == 96
    assert output["eval_config"]["exclude_special_tokens_from_reconstruction"] is True

    # The training loop's held-out metrics agree on the same tokens.
    keep = ~torch.isin(tokens, torch.tensor(model.special_token_ids))
    held_out = model.forward_to_hook(tokens, HOOK).float()[keep]
    training = reconstruction_metrics(sae, held_out)
    close(metrics["reconstruction_quality"]["explained_variance"], training["explained_variance"])
    close(metrics["sparsity"]["l0"], training["l0"])
    close(misc["frac_dead"], training["dead_fraction"])
    assert math.isfinite(metrics["misc_metrics"]["average_max_decoder_cosine_sim"])


def test_the_evaluation_set_is_the_corpus_tail(model, tmp_path: Path) -> None:
    for i in range(12):
        (tmp_path / f"{i:02d}.txt").write_text(f"document {i} " + "word " * 60)
    tail = tail_contexts(tmp_path, model.tokenizer, n_contexts=3, context_size=32)
    assert tail.shape == (3, 32) and (tail[:, 0] == model.tokenizer.bos_token_id).all()
    text = model.tokenizer.decode(tail.flatten())  # about the last 1.5 documents
    assert "document 11" in text and "document 9 " not in text
    with pytest.raises(InvalidInput, match="fewer than the 500"):
        tail_contexts(tmp_path, model.tokenizer, n_contexts=500, context_size=32)


def test_hook_z_edits_see_heads_concatenated(model) -> None:
    """Splicing an SAE on attn.hook_z: the edit reads [batch, seq, n_heads * d_head], as
    `forward_to_hook` hands the activations out, and what it returns goes back per head."""
    hook = "blocks.1.attn.hook_z"
    tokens = _tokens(model)[:2]
    seen: list[torch.Tensor] = []

    def tap(acts: torch.Tensor) -> None:
        seen.append(acts.clone())

    clean = model.logits_with_hook(tokens, hook, tap)
    assert seen[0].shape == model.forward_to_hook(tokens, hook).shape  # [2, 16, 64]
    assert torch.allclose(seen[0], model.forward_to_hook(tokens, hook), atol=1e-6)
    assert model.loss_with_hook(tokens, hook, lambda acts: acts) == pytest.approx(
        model.loss_with_hook(tokens, hook, None), abs=1e-5
    )
    zeroed = model.logits_with_hook(tokens, hook, torch.zeros_like)
    assert not torch.allclose(zeroed, clean, atol=1e-3)
