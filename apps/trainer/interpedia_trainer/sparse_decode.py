"""Fast SAE training steps that keep SAELens's numerics.

Why this exists: SAELens's TopK step materialises a dense [batch, d_sae] activation
tensor and multiplies it by the whole decoder, then autograd does three more dense
products (decoder weight, activation gradient, encoder weight) and one for the gradient
of the input (only used for `b_dec`). Its AuxK loss (dead-latent revival) repeats all of
that for a second dense [batch, d_sae] tensor. For TopK-family SAEs only k latents per
token are non-zero, so after the one dense encoder product everything else is sparse:

- decode: `embedding_bag(indices, W_dec, per_sample_weights=acts)` gathers the k
  decoder rows per token (cost k·d_in instead of d_sae·d_in); Matryoshka's nested
  prefix reconstructions come from the same call, one bag per (token, level), summed
  cumulatively over levels;
- encoder backward: only the kept pre-activations carry gradient, so the encoder weight
  gradient is a scatter-add of k input rows per token (`torch.sparse.mm`), `b_enc`'s is
  an `index_add`, and `b_dec`'s (through `sae_in - b_dec`) is `-W_enc @ grad_b_enc`,
  a mat-vec instead of a [batch, d_in] product;
- AuxK: the dead latents' pre-activations are already in the encoder product, so the
  auxiliary loss only slices their columns and runs its forward and backward as dense
  products over the dead latents alone (cost proportional to how many are dead, nothing
  once they revive), with hand-written gradients added to the step's.

The standard (ReLU + L1) step is dense by nature; it is written out by hand so that
the `b_dec` input gradient becomes a mat-vec, the L1 term a mat-vec, and the ReLU
backward one fused op. All steps compute the same loss terms as SAELens's
`training_forward_pass` (tests compare losses and gradients against it).

Every step takes the encoder's input `x` and, optionally, a different `target` for the
decoder to reconstruct (default: `x`): a transcoder is this with the next hook's
activations as the target.
"""

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from sae_lens import (
    BatchTopKTrainingSAE,
    MatryoshkaBatchTopKTrainingSAE,
    StandardTrainingSAE,
    TopKTrainingSAE,
)

from interpedia_trainer.distributed import SINGLE_PROCESS, DataParallel


@dataclass
class StepResult:
    """What the trainer needs after one fast step (gradients are already on the params)."""

    loss: float
    losses: dict[str, float]
    sae_out: torch.Tensor  # [batch, d_out], detached
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


@dataclass
class _Selection:
    """The kept latents of a batch, in embedding_bag layout (sorted by token)."""

    rows: torch.Tensor  # [nnz] token index
    cols: torch.Tensor  # [nnz] latent index, increasing within a token if `sorted_cols`
    pre: torch.Tensor  # [nnz] pre-activation (unscaled), detached


def _offsets_for(bags: torch.Tensor, n_bags: int) -> torch.Tensor:
    counts = torch.bincount(bags, minlength=n_bags)
    return torch.cumsum(counts, 0) - counts


def _select_topk(pre: torch.Tensor, scaled: torch.Tensor, k: int, sort_cols: bool) -> _Selection:
    """TopK: the k largest (decoder-norm-scaled) pre-activations of each token."""
    batch = pre.shape[0]
    idx = torch.topk(scaled, k, dim=-1, sorted=False).indices  # [batch, k]
    if sort_cols:
        idx = idx.sort(dim=-1).values
    rows = torch.arange(batch, device=pre.device).repeat_interleave(k)
    return _Selection(rows, idx.reshape(-1), pre.gather(1, idx).reshape(-1))


def _select_batch_topk(
    pre: torch.Tensor, scaled: torch.Tensor, k: float, parallel: DataParallel
) -> _Selection:
    """BatchTopK: the k·batch largest entries of the whole (global) batch.

    Across ranks the cut-off is the global n_keep-th value: all of the global top n_keep
    that a rank holds are among its own n_keep largest, and each rank keeps those at or
    above the cut. One rank keeps exactly SAELens's entries.
    """
    batch, d_sae = pre.shape
    n_keep = int(k * batch * parallel.world_size)
    flat_relu = scaled.relu().view(-1)
    top = torch.topk(flat_relu, min(n_keep, flat_relu.numel()), sorted=False)
    flat = top.indices
    if parallel.world_size > 1:
        cut = parallel.kth_largest(top.values, n_keep).to(top.values.device)
        flat = flat[top.values.float() >= cut]
    flat = flat.sort().values  # row-major: runs per token, columns increasing
    return _Selection(flat // d_sae, flat % d_sae, pre.view(-1)[flat])


def sparse_topk_training_step(
    sae: TopKTrainingSAE,
    x: torch.Tensor,  # [batch, d_in], already scaled
    dead_neuron_mask: torch.Tensor | None,  # [d_sae] bool
    *,
    target: torch.Tensor | None = None,  # [batch, d_out]; None: reconstruct x
    parallel: DataParallel = SINGLE_PROCESS,
) -> StepResult:
    """Forward + backward of a TopK / BatchTopK / Matryoshka SAE; grads land on `sae`.

    Same loss terms as the SAELens class's `training_forward_pass`: MSE summed over
    d_out, mean over tokens; Matryoshka adds one such MSE per inner prefix; plus the AuxK
    loss of the dead latents. BatchTopK updates its threshold like SAELens (from the
    global batch under `parallel`).
    """
    cfg = sae.cfg
    target = x if target is None else target
    batch = x.shape[0]
    rescale = bool(cfg.rescale_acts_by_decoder_norm)
    is_batch = isinstance(sae, BatchTopKTrainingSAE)
    widths = (
        list(cfg.matryoshka_widths) if isinstance(sae, MatryoshkaBatchTopKTrainingSAE) else None
    )

    with torch.no_grad():
        sae_in = x.to(sae.dtype)
        if cfg.apply_b_dec_to_input:
            sae_in = sae_in - sae.b_dec
        pre = torch.addmm(sae.b_enc, sae_in, sae.W_enc)  # [batch, d_sae]
        norm = sae.W_dec.norm(dim=-1) if rescale else None  # [d_sae]
        scaled = pre * norm if norm is not None else pre
        if is_batch:
            sel = _select_batch_topk(pre, scaled, cfg.k, parallel)
        else:
            sel = _select_topk(pre, scaled, int(cfg.k), sort_cols=widths is not None)

    # SAELens decodes relu(pre·‖W_dec‖) / ‖W_dec‖: the same value as relu(pre), and the
    # norm's gradient through the two factors cancels, so the norm only picks latents.
    acts = _GatheredEncoder.apply(
        sel.pre,
        sae.W_enc,
        sae.b_enc,
        sae.b_dec,
        sae_in,
        sel.cols,
        sel.rows,
        bool(cfg.apply_b_dec_to_input),
    ).relu()  # [nnz]
    losses: dict[str, torch.Tensor] = {}
    if widths is None:
        offsets = _offsets_for(sel.rows, batch)
        sae_out = F.embedding_bag(sel.cols, sae.W_dec, offsets, mode="sum", per_sample_weights=acts)
        sae_out = sae_out + sae.b_dec  # [batch, d_out]
        mse = (sae_out - target).pow(2).sum(dim=-1).mean()
        total = mse
    else:
        # One bag per (token, level): level partial sums, then prefixes by a cumsum.
        n_levels = len(widths)
        bounds = torch.tensor(widths[:-1], device=x.device)
        bags = sel.rows * n_levels + torch.bucketize(sel.cols, bounds, right=True)
        offsets = _offsets_for(bags, batch * n_levels)
        parts = F.embedding_bag(sel.cols, sae.W_dec, offsets, mode="sum", per_sample_weights=acts)
        prefixes = parts.view(batch, n_levels, -1).cumsum(1) + sae.b_dec  # [batch, L, d_out]
        level_mse = (prefixes - target[:, None]).pow(2).sum(dim=-1).mean(0)  # [L]
        sae_out = prefixes[:, -1]
        mse = level_mse[-1]
        for width, inner in zip(widths[:-1], level_mse[:-1], strict=True):
            losses[f"inner_mse_loss_{width}"] = inner
        total = level_mse.sum()
    losses = {"mse_loss": mse, **losses}
    total.backward()

    del scaled
    aux = _aux_k_step(
        sae, sae_in, pre, norm, (target - sae_out).detach(), dead_neuron_mask, target.shape[-1]
    )
    losses["auxiliary_reconstruction_loss"] = aux

    with torch.no_grad():
        positive = acts.detach() > 0
        if is_batch:
            # SAELens's threshold is in decoder-norm-scaled units.
            kept = acts.detach() * norm[sel.cols] if norm is not None else acts.detach()
            _update_threshold(sae, kept[positive], parallel)  # type: ignore[arg-type]
        fired = torch.bincount(sel.cols[positive], minlength=cfg.d_sae)
        l0 = float(positive.sum()) / batch
    return StepResult(
        loss=float(total.detach()) + float(aux),
        losses={name: float(v.detach()) for name, v in losses.items()},
        sae_out=sae_out.detach(),
        fired=fired,
        l0=l0,
    )


@torch.no_grad()
def _update_threshold(
    sae: BatchTopKTrainingSAE, positive: torch.Tensor, parallel: DataParallel
) -> None:
    """SAELens's EMA of the smallest kept activation, over the global batch."""
    smallest = positive.min() if positive.numel() else positive.new_tensor(torch.inf)
    smallest = parallel.all_reduce_min(smallest.reshape(1))
    if torch.isfinite(smallest).all():
        sae.update_topk_threshold(smallest)


@torch.no_grad()
def _aux_k_step(
    sae: TopKTrainingSAE,
    sae_in: torch.Tensor,  # [batch, d_in], b_dec already subtracted
    pre: torch.Tensor,  # [batch, d_sae] encoder pre-activations
    norm: torch.Tensor | None,  # [d_sae] decoder norms, if TopK ranks pre times them
    residual: torch.Tensor,  # [batch, d_out] target - sae_out
    dead_neuron_mask: torch.Tensor | None,
    d_out: int,
) -> torch.Tensor:
    """SAELens's `calculate_topk_aux_loss` over the dead latents only; adds its gradients.

    Each token's top k_aux = d_out/2 dead latents (by scaled pre-activation, no ReLU, as
    SAELens) reconstruct the live latents' residual without bias; the loss is scaled
    down when fewer than k_aux latents are dead. Forward and backward are dense products
    over the dead columns, [batch, n_dead] instead of SAELens's [batch, d_sae]: on CPU a
    dense product beats gathering k_aux decoder rows per token at any dead share.
    """
    coefficient = float(sae.cfg.aux_loss_coefficient)
    if dead_neuron_mask is None or coefficient == 0:
        return pre.new_tensor(0.0)
    dead = dead_neuron_mask.nonzero().squeeze(1)  # [n_dead]
    n_dead = dead.numel()
    if n_dead == 0:
        return pre.new_tensor(0.0)
    batch = pre.shape[0]
    k_aux = d_out // 2
    scale = min(n_dead / k_aux, 1.0)
    k_aux = min(k_aux, n_dead)
    acts = pre.index_select(1, dead)  # [batch, n_dead]
    keep = None
    if k_aux < n_dead:
        ranked = acts * norm.index_select(0, dead) if norm is not None else acts
        chosen = ranked.topk(k_aux, dim=-1, sorted=False).indices  # [batch, k_aux]
        keep = torch.zeros_like(acts, dtype=torch.bool).scatter_(1, chosen, True)
        acts.mul_(keep)
    W_dead = sae.W_dec.index_select(0, dead)  # [n_dead, d_out]
    diff = acts @ W_dead - residual  # [batch, d_out]
    c = coefficient * scale
    loss = c * diff.pow(2).sum(dim=-1).mean()

    d_recons = diff.mul_(2 * c / batch)  # d loss / d recons
    sae.W_dec.grad.index_add_(0, dead, acts.T @ d_recons)  # type: ignore[union-attr]
    d_acts = d_recons @ W_dead.T  # [batch, n_dead]
    if keep is not None:
        d_acts.mul_(keep)
    d_b_enc = d_acts.sum(0)
    sae.W_enc.grad.index_add_(1, dead, sae_in.T @ d_acts)  # type: ignore[union-attr]
    sae.b_enc.grad.index_add_(0, dead, d_b_enc)  # type: ignore[union-attr]
    if sae.cfg.apply_b_dec_to_input:
        sae.b_dec.grad.sub_(sae.W_enc.index_select(1, dead) @ d_b_enc)  # type: ignore[union-attr]
    return loss


def dense_standard_training_step(
    sae: StandardTrainingSAE,
    x: torch.Tensor,  # [batch, d_in], already scaled
    l1_coefficient: float,
    *,
    target: torch.Tensor | None = None,  # [batch, d_out]; None: reconstruct x
) -> StepResult:
    """Standard (ReLU + L1) SAE step with a hand-written backward; sets `.grad`.

    Loss = ‖sae_out − target‖² summed over d_out, mean over tokens
    + l1 · mean_t Σ_j a_tj ‖W_dec,j‖ (SAELens's `lp_norm=1` penalty; a ≥ 0 so the p-norm
    is a plain sum, i.e. a mat-vec).
    """
    if sae.cfg.lp_norm != 1.0:
        raise ValueError("the fast standard step supports lp_norm=1 only")
    batch = x.shape[0]
    W_enc, b_enc, W_dec, b_dec = sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec
    with torch.no_grad():
        x = x.to(sae.dtype)
        target = x if target is None else target.to(sae.dtype)
        sae_in = x - b_dec if sae.cfg.apply_b_dec_to_input else x
        acts = torch.addmm(b_enc, sae_in, W_enc).relu_()  # [batch, d_sae]
        diff = torch.addmm(b_dec, acts, W_dec).sub_(target)  # [batch, d_out] = sae_out - target
        mse = diff.pow(2).sum(dim=-1).mean()
        norm = W_dec.norm(dim=1)  # [d_sae]
        act_sum = acts.sum(0)  # [d_sae]
        c = l1_coefficient / batch
        l1 = c * (act_sum @ norm)

        d_out = diff.mul(2.0 / batch)  # [batch, d_out]
        grad_b_dec = d_out.sum(0)
        grad_W_dec = acts.T @ d_out  # [d_sae, d_out]
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
        sae_out = diff.add_(target)
    return StepResult(
        loss=float(mse + l1),
        losses={"mse_loss": float(mse), "l1_loss": float(l1)},
        sae_out=sae_out,
        fired=fired,
        l0=l0,
    )
