"""Fast SAE training steps that keep SAELens's numerics.

Why this exists: SAELens's TopK step materialises a dense [batch, d_sae] activation
tensor and multiplies it by the whole decoder, then autograd does three more dense
products (decoder weight, activation gradient, encoder weight) and one for the gradient
of the input (only used for `b_dec`). For TopK-family SAEs only k latents per token are
non-zero, so after the one dense encoder product everything else is sparse:

- decode: `embedding_bag(indices, W_dec, per_sample_weights=acts)` gathers the k
  decoder rows per token (cost k·d_in instead of d_sae·d_in);
- encoder backward: only the kept pre-activations carry gradient, so the encoder weight
  gradient is a scatter-add of k input rows per token (`torch.sparse.mm`), `b_enc`'s is
  an `index_add`, and `b_dec`'s (through `sae_in - b_dec`) is `-W_enc @ grad_b_enc`,
  a mat-vec instead of a [batch, d_in] product.

The standard (ReLU + L1) step is dense by nature; it is written out by hand so that
the `b_dec` input gradient becomes a mat-vec, the L1 term a mat-vec, and the ReLU
backward one fused op. Both steps compute the same loss terms as SAELens's
`training_forward_pass` (tests compare losses and gradients against it).
"""

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from sae_lens import BatchTopKTrainingSAE, StandardTrainingSAE, TopKTrainingSAE
from sae_lens.saes.sae import TrainingSAE


@dataclass
class SparseActs:
    """Non-zero-candidate latents of a batch, in embedding_bag layout (sorted by row)."""

    cols: torch.Tensor  # [nnz] latent index
    rows: torch.Tensor  # [nnz] token index in the batch
    offsets: torch.Tensor  # [batch] start of each token's run in cols
    values: torch.Tensor  # [nnz] post-activation value (>= 0), differentiable


@dataclass
class StepResult:
    """What the trainer needs after one fast step (gradients are already on the params)."""

    loss: float
    losses: dict[str, float]
    sae_out: torch.Tensor  # [batch, d_in], detached
    fired: torch.Tensor  # [d_sae] count of tokens where each latent was > 0
    l0: float


class _GatheredEncoder(torch.autograd.Function):
    """The kept pre-activations `(sae_in @ W_enc + b_enc)[rows, cols]`, sparse backward.

    The forward value is gathered from the dense product the caller already computed
    (no recomputation); the backward touches only the nnz kept entries.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        pre_sel: torch.Tensor,  # [nnz] detached values
        W_enc: torch.Tensor,  # [d_in, d_sae]
        b_enc: torch.Tensor,  # [d_sae]
        b_dec: torch.Tensor,  # [d_in]
        sae_in: torch.Tensor,  # [batch, d_in] = x - b_dec, detached
        cols: torch.Tensor,
        rows: torch.Tensor,
        apply_b_dec_to_input: bool,
    ) -> torch.Tensor:
        ctx.save_for_backward(W_enc, sae_in, cols, rows)
        ctx.apply_b_dec_to_input = apply_b_dec_to_input
        return pre_sel.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        W_enc, sae_in, cols, rows = ctx.saved_tensors
        d_sae = W_enc.shape[1]
        grad_b_enc = torch.zeros(d_sae, dtype=grad.dtype, device=grad.device)
        grad_b_enc.index_add_(0, cols, grad)
        # [d_sae, batch] sparse × [batch, d_in] dense: each kept entry adds one input row.
        coo = torch.sparse_coo_tensor(
            torch.stack([cols, rows]), grad, (d_sae, sae_in.shape[0]), check_invariants=False
        )
        grad_W_enc = torch.sparse.mm(coo, sae_in).T  # [d_in, d_sae]
        grad_b_dec = None
        if ctx.apply_b_dec_to_input:
            # d(sae_in)/d(b_dec) = -I summed over the batch: -W_enc @ (sum of entry grads).
            grad_b_dec = -(W_enc @ grad_b_enc)
        return None, grad_W_enc, grad_b_enc, grad_b_dec, None, None, None, None


def _encode_sparse(
    sae: TrainingSAE[Any],
    pre_sel: torch.Tensor,
    sae_in: torch.Tensor,
    cols: torch.Tensor,
    rows: torch.Tensor,
) -> torch.Tensor:
    return _GatheredEncoder.apply(
        pre_sel,
        sae.W_enc,
        sae.b_enc,
        sae.b_dec,
        sae_in,
        cols,
        rows,
        bool(sae.cfg.apply_b_dec_to_input),
    )


def _offsets_for(rows: torch.Tensor, batch: int) -> torch.Tensor:
    counts = torch.bincount(rows, minlength=batch)
    return torch.cumsum(counts, 0) - counts


def sparse_topk_training_step(
    sae: TopKTrainingSAE,
    x: torch.Tensor,  # [batch, d_in], already scaled
    dead_neuron_mask: torch.Tensor | None,  # [d_sae] bool
) -> StepResult:
    """Forward + backward of a TopK / BatchTopK SAE; gradients land on `sae`'s params.

    Same loss terms as `TopKTrainingSAE.training_forward_pass` (MSE summed over d_in,
    mean over tokens, plus the dead-latent auxiliary loss) and, for BatchTopK, the same
    threshold update.
    """
    cfg = sae.cfg
    batch, d_sae = x.shape[0], cfg.d_sae
    rescale = bool(cfg.rescale_acts_by_decoder_norm)
    is_batch = isinstance(sae, BatchTopKTrainingSAE)

    with torch.no_grad():
        sae_in = x.to(sae.dtype)
        if cfg.apply_b_dec_to_input:
            sae_in = sae_in - sae.b_dec
        pre = torch.addmm(sae.b_enc, sae_in, sae.W_enc)  # [batch, d_sae]
        scaled = pre * sae.W_dec.norm(dim=-1) if rescale else pre
        if is_batch:
            n_keep = int(cfg.k * batch)
            flat = torch.topk(scaled.relu().view(-1), n_keep, sorted=False).indices
            flat = flat.sort().values  # row-major order: runs per token for embedding_bag
            rows, cols = flat // d_sae, flat % d_sae
            offsets = _offsets_for(rows, batch)
            pre_sel = pre.view(-1)[flat]
        else:
            k = int(cfg.k)
            idx = torch.topk(scaled, k, dim=-1, sorted=False).indices  # [batch, k]
            pre_sel = pre.gather(1, idx).reshape(-1)
            cols = idx.reshape(-1)
            rows = torch.arange(batch, device=x.device).repeat_interleave(k)
            offsets = torch.arange(0, batch * k, k, device=x.device)

    norm = sae.W_dec.norm(dim=-1) if rescale else None  # [d_sae], differentiable
    hidden = _encode_sparse(sae, pre_sel, sae_in, cols, rows)
    if norm is not None:
        hidden = hidden * norm[cols]
    acts = hidden.relu()  # [nnz]
    weights = acts * (1 / norm)[cols] if norm is not None else acts
    sae_out = F.embedding_bag(cols, sae.W_dec, offsets, mode="sum", per_sample_weights=weights)
    sae_out = sae_out + sae.b_dec  # [batch, d_in]
    mse = (sae_out - x).pow(2).sum(dim=-1).mean()
    total = mse
    losses = {"mse_loss": mse}

    aux = _topk_aux_loss(sae, x, sae_out, scaled, pre, sae_in, norm, dead_neuron_mask)
    losses["auxiliary_reconstruction_loss"] = aux
    total = total + aux
    total.backward()

    with torch.no_grad():
        if is_batch:
            sae.update_topk_threshold(acts.detach())
        positive = acts.detach() > 0
        fired = torch.bincount(cols[positive], minlength=d_sae)
        l0 = float(positive.sum()) / batch
    return StepResult(
        loss=float(total.detach()),
        losses={name: float(v.detach()) for name, v in losses.items()},
        sae_out=sae_out.detach(),
        fired=fired,
        l0=l0,
    )


def _topk_aux_loss(
    sae: TopKTrainingSAE,
    x: torch.Tensor,
    sae_out: torch.Tensor,
    scaled: torch.Tensor,
    pre: torch.Tensor,
    sae_in: torch.Tensor,
    norm: torch.Tensor | None,
    dead_neuron_mask: torch.Tensor | None,
) -> torch.Tensor:
    """SAELens's `calculate_topk_aux_loss` with a gathered decode (dead latents only)."""
    if dead_neuron_mask is None or (num_dead := int(dead_neuron_mask.sum())) == 0:
        return sae_out.new_tensor(0.0)
    batch = x.shape[0]
    k_aux = x.shape[-1] // 2
    scale = min(num_dead / k_aux, 1.0)
    k_aux = min(k_aux, num_dead)
    with torch.no_grad():
        masked = torch.where(dead_neuron_mask[None], scaled, -torch.inf)
        idx = masked.topk(k_aux, sorted=False).indices  # [batch, k_aux]
        cols = idx.reshape(-1)
        rows = torch.arange(batch, device=x.device).repeat_interleave(k_aux)
        offsets = torch.arange(0, batch * k_aux, k_aux, device=x.device)
        pre_sel = pre.gather(1, idx).reshape(-1)
    hidden = _encode_sparse(sae, pre_sel, sae_in, cols, rows)
    if norm is not None:
        hidden = hidden * norm[cols]
        hidden = hidden * (1 / norm)[cols]
    recons = F.embedding_bag(cols, sae.W_dec, offsets, mode="sum", per_sample_weights=hidden)
    residual = (x - sae_out).detach()
    loss = (recons - residual).pow(2).sum(dim=-1).mean()
    return sae.cfg.aux_loss_coefficient * scale * loss


def dense_standard_training_step(
    sae: StandardTrainingSAE,
    x: torch.Tensor,  # [batch, d_in], already scaled
    l1_coefficient: float,
) -> StepResult:
    """Standard (ReLU + L1) SAE step with a hand-written backward; sets `.grad`.

    Loss = ‖sae_out − x‖² summed over d_in, mean over tokens + l1 · mean_t Σ_j a_tj ‖W_dec,j‖
    (SAELens's `lp_norm=1` penalty; a ≥ 0 so the p-norm is a plain sum, i.e. a mat-vec).
    """
    if sae.cfg.lp_norm != 1.0:
        raise ValueError("the fast standard step supports lp_norm=1 only")
    batch = x.shape[0]
    W_enc, b_enc, W_dec, b_dec = sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec
    with torch.no_grad():
        x = x.to(sae.dtype)
        sae_in = x - b_dec if sae.cfg.apply_b_dec_to_input else x
        acts = torch.addmm(b_enc, sae_in, W_enc).relu_()  # [batch, d_sae]
        diff = torch.addmm(b_dec, acts, W_dec).sub_(x)  # [batch, d_in] = sae_out - x
        mse = diff.pow(2).sum(dim=-1).mean()
        norm = W_dec.norm(dim=1)  # [d_sae]
        act_sum = acts.sum(0)  # [d_sae]
        c = l1_coefficient / batch
        l1 = c * (act_sum @ norm)

        d_out = diff.mul(2.0 / batch)  # [batch, d_in]
        grad_b_dec = d_out.sum(0)
        grad_W_dec = acts.T @ d_out  # [d_sae, d_in]
        grad_W_dec.addcmul_((c * act_sum / norm.clamp(min=1e-12))[:, None], W_dec)
        d_acts = torch.addmm((c * norm)[None], d_out, W_dec.T)  # [batch, d_sae]
        d_pre = torch.ops.aten.threshold_backward(d_acts, acts, 0.0)
        del d_acts
        grad_W_enc = sae_in.T @ d_pre  # [d_in, d_sae]
        grad_b_enc = d_pre.sum(0)
        if sae.cfg.apply_b_dec_to_input:
            grad_b_dec -= W_enc @ grad_b_enc
        for param, g in ((W_enc, grad_W_enc), (b_enc, grad_b_enc), (W_dec, grad_W_dec)):
            param.grad = g
        b_dec.grad = grad_b_dec
        # acts >= 0, so sign() is the firing indicator; cheaper than (acts > 0).sum(0).
        fired = acts.sign().sum(0).long()
        l0 = float(fired.sum()) / batch
        sae_out = diff.add_(x)
    return StepResult(
        loss=float(mse + l1),
        losses={"mse_loss": float(mse), "l1_loss": float(l1)},
        sae_out=sae_out,
        fired=fired,
        l0=l0,
    )
