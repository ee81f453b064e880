"""Held-out SAE metrics: reconstruction, sparsity and CE loss recovered.

`reconstruction_metrics` needs only activations; `ce_loss_recovered` needs a model that
can run with a hook replaced (`LanguageModel` protocol, implemented by
`activations.BridgeLanguageModel`). `make_evaluator` bundles both into the callable the
training loop calls every `eval_every_steps` and at the end.
"""

from collections.abc import Callable
from typing import Any, Protocol

import torch
from sae_lens.saes.sae import SAE


class LanguageModel(Protocol):
    """What CE-loss-recovered needs from a model runtime."""

    def loss_with_hook(
        self,
        tokens: torch.Tensor,  # [batch, seq]
        hook_name: str,
        replace: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> float:
        """Mean next-token CE loss, with the hook's output replaced by `replace(acts)`."""
        ...


@torch.no_grad()
def reconstruction_metrics(
    sae: SAE[Any] | Any,
    acts: torch.Tensor,  # [n_tokens, d_in]
    *,
    batch_size: int = 4096,
    dense_threshold: float = 0.1,
) -> dict[str, float]:
    """MSE (per token, summed over d_in), explained variance, mean L0, dead/dense shares.

    Explained variance = 1 − Σ‖x − x̂‖² / Σ‖x − mean(x)‖² over all held-out tokens (the
    same definition as SAELens's `metrics/explained_variance`). Dead here means never
    firing on the held-out tokens.
    """
    n = acts.shape[0]
    mean = acts.mean(0)
    sse = 0.0
    total_var = 0.0
    l0_sum = 0.0
    fired = None
    for start in range(0, n, batch_size):
        x = acts[start : start + batch_size].to(sae.W_dec.device, sae.W_dec.dtype)
        feats = sae.encode(x)
        recon = sae.decode(feats)
        sse += float((recon - x).pow(2).sum())
        total_var += float((x - mean.to(x)).pow(2).sum())
        positive = feats > 0
        l0_sum += float(positive.sum())
        counts = positive.sum(0)
        fired = counts if fired is None else fired + counts
    assert fired is not None
    freq = fired.double() / n
    return {
        "mse": sse / n,
        "explained_variance": 1 - sse / total_var if total_var > 0 else 0.0,
        "l0": l0_sum / n,
        "dead_fraction": float((fired == 0).float().mean()),
        "dense_fraction": float((freq > dense_threshold).float().mean()),
    }


@torch.no_grad()
def ce_loss_recovered(
    model: LanguageModel,
    sae: SAE[Any] | Any,
    tokens: torch.Tensor,  # [batch, seq]
    hook_name: str,
) -> dict[str, float]:
    """CE loss with the SAE spliced in vs the clean model vs the hook zero-ablated.

    recovered = (zero − spliced) / (zero − clean): 1 means the SAE loses nothing.
    """

    def splice(acts: torch.Tensor) -> torch.Tensor:
        shape = acts.shape
        flat = acts.reshape(-1, shape[-1])
        out = sae.decode(sae.encode(flat.to(sae.W_dec.dtype)))
        return out.reshape(shape).to(acts.dtype)

    clean = model.loss_with_hook(tokens, hook_name, None)
    spliced = model.loss_with_hook(tokens, hook_name, splice)
    zero = model.loss_with_hook(tokens, hook_name, torch.zeros_like)
    denom = zero - clean
    return {
        "ce_loss_clean": clean,
        "ce_loss_with_sae": spliced,
        "ce_loss_zero_ablated": zero,
        "ce_loss_recovered": (zero - spliced) / denom if denom != 0 else 0.0,
    }


def make_evaluator(
    held_out: torch.Tensor,
    *,
    model: LanguageModel | None = None,
    tokens: torch.Tensor | None = None,
    hook_name: str | None = None,
    dense_threshold: float = 0.1,
) -> Callable[[Any], dict[str, float]]:
    """The training loop's evaluator: held-out reconstruction, plus CE if a model is given."""

    def evaluate(sae: Any) -> dict[str, float]:
        out = reconstruction_metrics(sae, held_out, dense_threshold=dense_threshold)
        if model is not None and tokens is not None and hook_name is not None:
            out.update(ce_loss_recovered(model, sae, tokens, hook_name))
        return out

    return evaluate
