"""Feature dashboards from one streaming pass of the model.

For each feature in `feature_range` over N prompts: max activation, share of tokens where
it fires, the top-k prompts (by their max activation) with per-token values, prompts
sampled from equal-width activation bins, a histogram of non-zero activations, the logit
lens (decoder row × W_U) with its histogram, and the decoder-cosine-nearest features.

How it stays one model pass without a dense tokens × features matrix:

1. Stream: run the model to the hook on a batch of prompts, encode with the SAE, keep
   only the feature range, and store the non-zero entries as (token, feature, value)
   triples. That is the only model pass; its dense [batch, seq, features] block lives
   for one batch. The running max per feature is kept as we go.
2. Replay (SAE codes only, no model): now that each feature's max is known, the bins of
   the histogram ([0, max] in `hist_bins` equal bins) and of the example sampler
   ([0, max] in `n_bins`) are fixed, so histograms are exact counts and bin samples are
   exact uniform samples. The per-prompt max of every (prompt, feature) gets a
   deterministic pseudo-random key (a hash of prompt index, feature index and seed); a
   bin's sample is the `per_bin` prompts with the smallest keys (bottom-k sampling ==
   uniform sampling without replacement). Top-k prompts use a running top-k.
3. Per-token values of the chosen prompts are read back from the stored triples.

Memory is O(non-zeros in the feature range): split a large SAE into feature ranges
(`feature_range`) and give each to a worker; they share the same prompts.
Tokens whose id is in `ignore_token_ids` (BOS, pad, EOS) never count.
"""

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from interpedia_core.errors import InvalidInput

logger = logging.getLogger(__name__)

ForwardToHook = Callable[[torch.Tensor], torch.Tensor]  # tokens [b, T] -> acts [b, T, d_in]


@dataclass
class ActivationExample:
    """One prompt shown for a feature, with the feature's value at every token."""

    prompt_index: int
    tokens: list[int]
    values: list[float]
    max_value: float
    max_value_token_index: int
    bin_index: int | None = None  # None for top examples
    bin_min: float | None = None
    bin_max: float | None = None


@dataclass
class FeatureDashboard:
    """Everything a feature page shows; `index` is the feature's index in the SAE."""

    index: int
    max_activation: float
    frac_nonzero: float
    top_examples: list[ActivationExample] = field(default_factory=list)
    bin_examples: list[ActivationExample] = field(default_factory=list)
    freq_hist_heights: list[int] = field(default_factory=list)
    freq_hist_values: list[float] = field(default_factory=list)  # bin centres
    logit_pos_tokens: list[int] = field(default_factory=list)
    logit_pos_values: list[float] = field(default_factory=list)
    logit_neg_tokens: list[int] = field(default_factory=list)
    logit_neg_values: list[float] = field(default_factory=list)
    logit_hist_heights: list[int] = field(default_factory=list)
    logit_hist_values: list[float] = field(default_factory=list)
    cossim_indices: list[int] = field(default_factory=list)
    cossim_values: list[float] = field(default_factory=list)


@dataclass
class DashboardOptions:
    """Sizes of what is kept per feature (defaults follow SAEDashboard's Neuronpedia runner)."""

    n_top: int = 20
    n_bins: int = 5
    per_bin: int = 5
    hist_bins: int = 50
    n_logits: int = 10
    n_cossim: int = 10
    batch_size: int = 16
    seed: int = 0


def sample_keys(prompt_ids: torch.Tensor, feature_ids: torch.Tensor, seed: int) -> torch.Tensor:
    """Deterministic uniform keys in [0, 1) for (prompt, feature) pairs (broadcasting).

    A hash rather than a generator so that the key of a pair does not depend on batch
    order or on which worker sees it; the brute-force test reproduces it exactly.
    """
    mask = 0xFFFFFFFF
    x = (prompt_ids.long() * 73856093) ^ (feature_ids.long() * 19349663) ^ (seed * 83492791)
    x = x & mask
    for _ in range(2):
        x = ((x ^ (x >> 16)) * 0x45D9F3B) & mask
    x = x ^ (x >> 16)
    return x.double() / float(mask + 1)


def bin_of(values: torch.Tensor, max_values: torch.Tensor, n: int) -> torch.Tensor:
    """Equal-width bin of each value in [0, max] (the max itself goes in the last bin)."""
    scaled = values.double() / max_values.double().clamp(min=1e-30) * n
    return scaled.floor().long().clamp(0, n - 1)


@dataclass
class _Chunk:
    """Non-zero SAE codes of one batch of prompts, restricted to the feature range."""

    first_prompt: int
    n_prompts: int
    token_rows: torch.Tensor  # [nnz] flat token index within the chunk (prompt * T + pos)
    features: torch.Tensor  # [nnz] feature offset within the range
    values: torch.Tensor  # [nnz]

    def dense(self, seq_len: int, n_features: int) -> torch.Tensor:
        out = torch.zeros(self.n_prompts * seq_len, n_features, dtype=self.values.dtype)
        out[self.token_rows, self.features] = self.values
        return out.view(self.n_prompts, seq_len, n_features)


def compute_dashboards(
    forward_to_hook: ForwardToHook,
    sae: Any,
    tokens: torch.Tensor,  # [n_prompts, seq_len]
    *,
    W_U: torch.Tensor | None = None,  # [d_in, d_vocab]
    feature_range: tuple[int, int] | None = None,
    ignore_token_ids: Iterable[int] = (),
    options: DashboardOptions | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[FeatureDashboard]:
    """Dashboards for features [start, stop) of `sae` over `tokens`; one model pass.

    `forward_to_hook` runs the model up to the SAE's hook (stop early) and returns the
    hook's activations; `sae` is anything with `encode` and `W_dec` (a SAELens SAE).
    """
    opts = options or DashboardOptions()
    d_sae = int(sae.W_dec.shape[0])
    start, stop = feature_range or (0, d_sae)
    if not 0 <= start < stop <= d_sae:
        raise InvalidInput(f"feature range [{start}, {stop}) is outside 0..{d_sae}")
    if tokens.ndim != 2 or tokens.shape[0] == 0:
        raise InvalidInput("dashboards need at least one prompt of tokens [n_prompts, seq]")
    n_prompts, seq_len = tokens.shape
    n_feat = stop - start
    ignore = torch.tensor(sorted(set(ignore_token_ids)), dtype=torch.long)

    t0 = time.perf_counter()
    # -- 1. the one model pass ------------------------------------------------------------
    chunks: list[_Chunk] = []
    max_act = torch.zeros(n_feat)
    for first in range(0, n_prompts, opts.batch_size):
        batch_tokens = tokens[first : first + opts.batch_size]
        b = batch_tokens.shape[0]
        with torch.no_grad():
            resid = forward_to_hook(batch_tokens)  # [b, T, d_in]
            acts = sae.encode(resid.reshape(b * seq_len, -1).to(sae.W_dec.dtype))
            acts = acts[:, start:stop].float()  # [b*T, F]
        keep = ~torch.isin(batch_tokens.reshape(-1), ignore)
        acts[~keep] = 0
        rows, feats = (acts > 0).nonzero(as_tuple=True)
        values = acts[rows, feats]
        chunks.append(_Chunk(first, b, rows, feats, values))
        if values.numel():
            max_act = torch.maximum(
                max_act, torch.zeros(n_feat).scatter_reduce(0, feats, values, "amax")
            )
        if on_progress is not None:
            on_progress(first + b, n_prompts)
        del acts, resid

    t1 = time.perf_counter()
    n_counted = int((~torch.isin(tokens.reshape(-1), ignore)).sum())

    # -- 2. replay the stored codes with the bins now fixed --------------------------------
    feature_ids = torch.arange(start, stop)
    nonzero = torch.zeros(n_feat, dtype=torch.long)
    hist = torch.zeros(n_feat * opts.hist_bins, dtype=torch.long)
    k_top = min(opts.n_top, n_prompts)
    top_vals = torch.full((k_top, n_feat), -1.0)
    top_ids = torch.full((k_top, n_feat), -1, dtype=torch.long)
    res_keys = torch.full((opts.n_bins, opts.per_bin, n_feat), torch.inf, dtype=torch.float64)
    res_ids = torch.full((opts.n_bins, opts.per_bin, n_feat), -1, dtype=torch.long)
    for chunk in chunks:
        nonzero += torch.bincount(chunk.features, minlength=n_feat)
        hb = bin_of(chunk.values, max_act[chunk.features], opts.hist_bins)
        hist += torch.bincount(chunk.features * opts.hist_bins + hb, minlength=hist.numel())

        prompt_of = chunk.token_rows // seq_len
        prompt_max = (
            torch.zeros(chunk.n_prompts * n_feat)
            .scatter_reduce(0, prompt_of * n_feat + chunk.features, chunk.values, "amax")
            .view(chunk.n_prompts, n_feat)
        )  # [b, F]
        ids = torch.arange(chunk.first_prompt, chunk.first_prompt + chunk.n_prompts)

        # running top-k by prompt max; a stable sort keeps ties in prompt order
        # (earlier prompts sit first in the concatenation), so the result is deterministic
        cand_vals = torch.cat([top_vals, prompt_max])
        cand_ids = torch.cat([top_ids, ids[:, None].expand(-1, n_feat)])
        sel = cand_vals.sort(dim=0, descending=True, stable=True).indices[:k_top]
        top_vals, top_ids = cand_vals.gather(0, sel), cand_ids.gather(0, sel)

        # bottom-k keys per activation bin
        keys = sample_keys(ids[:, None], feature_ids[None, :], opts.seed)  # [b, F]
        bins = bin_of(prompt_max, max_act[None, :], opts.n_bins)
        # all bins at once: candidates [per_bin + b, n_bins, F], keep the per_bin smallest
        in_bin = (prompt_max > 0)[:, None, :] & (
            bins[:, None, :] == torch.arange(opts.n_bins)[None, :, None]
        )  # [b, n_bins, F]
        if bool(in_bin.any()):
            new_k = keys[:, None, :].expand_as(in_bin).masked_fill(~in_bin, torch.inf)
            new_i = torch.where(in_bin, ids[:, None, None], -1)
            cand_k = torch.cat([res_keys.transpose(0, 1), new_k])
            cand_i = torch.cat([res_ids.transpose(0, 1), new_i])
            sel = cand_k.topk(opts.per_bin, dim=0, largest=False).indices  # [per_bin, n_bins, F]
            res_keys = cand_k.gather(0, sel).transpose(0, 1).contiguous()
            res_ids = cand_i.gather(0, sel).transpose(0, 1).contiguous()

    t2 = time.perf_counter()
    # -- 3. per-token values of the chosen (prompt, feature) pairs -------------------------
    # Only the pairs shown are kept ([n_pairs, T]); each chunk is densified once, alone.
    top_mask = top_vals > 0
    pair_pid = torch.cat([top_ids[top_mask], res_ids[res_ids >= 0]])
    pair_f = torch.cat([torch.nonzero(top_mask)[:, 1], torch.nonzero(res_ids >= 0)[:, 2]])
    pair_values = torch.zeros(pair_pid.numel(), seq_len)
    pair_chunk = pair_pid // opts.batch_size
    for ci in pair_chunk.unique().tolist():
        sel = (pair_chunk == ci).nonzero(as_tuple=True)[0]
        dense = chunks[ci].dense(seq_len, n_feat)
        pair_values[sel] = dense[pair_pid[sel] - chunks[ci].first_prompt, :, pair_f[sel]]
        del dense
    # Python lists in bulk: one tolist() per table is far cheaper than one per example.
    pair_index = {
        (p, f): n for n, (p, f) in enumerate(zip(pair_pid.tolist(), pair_f.tolist(), strict=True))
    }
    values_list = pair_values.tolist()
    argmax_list = pair_values.argmax(dim=1).tolist()
    max_list = pair_values.amax(dim=1).tolist() if pair_values.numel() else []
    token_lists: dict[int, list[int]] = {p: tokens[p].tolist() for p in pair_pid.unique().tolist()}
    max_act_list = max_act.tolist()

    def example(pid: int, f: int, bin_index: int | None = None) -> ActivationExample:
        n = pair_index[(pid, f)]
        ex = ActivationExample(
            prompt_index=pid,
            tokens=token_lists[pid],
            values=values_list[n],
            max_value=max_list[n],
            max_value_token_index=argmax_list[n],
        )
        if bin_index is not None:
            width = max_act_list[f] / opts.n_bins
            ex.bin_index, ex.bin_min, ex.bin_max = (
                bin_index,
                bin_index * width,
                (bin_index + 1) * width,
            )
        return ex

    t3 = time.perf_counter()
    # -- weights-only statistics, in feature blocks (a [F, d_vocab] block can be large) ----
    W_dec = sae.W_dec.detach().float()
    unit = W_dec / W_dec.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    n_cos = min(opts.n_cossim, d_sae - 1)
    cos_idx: list[list[int]] = []
    cos_val: list[list[float]] = []
    logit_rows: list[
        tuple[list[int], list[float], list[int], list[float], list[int], list[float]]
    ] = []
    block = 256
    for b0 in range(0, n_feat, block):
        b1 = min(b0 + block, n_feat)
        if n_cos > 0:
            cos = unit[start + b0 : start + b1] @ unit.T  # [blk, d_sae]
            cos[torch.arange(b1 - b0), feature_ids[b0:b1]] = -torch.inf
            top = cos.topk(n_cos, dim=1)
            cos_idx += top.indices.tolist()
            cos_val += top.values.tolist()
        if W_U is not None:
            logits = W_dec[start + b0 : start + b1] @ W_U.float()  # [blk, d_vocab]
            pos = logits.topk(opts.n_logits, dim=1)
            neg = logits.topk(opts.n_logits, dim=1, largest=False)
            heights, centres = logit_histograms(logits, opts.hist_bins)
            logit_rows += list(
                zip(
                    pos.indices.tolist(),
                    pos.values.tolist(),
                    neg.indices.tolist(),
                    neg.values.tolist(),
                    heights.tolist(),
                    centres.tolist(),
                    strict=True,
                )
            )

    t4 = time.perf_counter()
    hist_list = hist.view(n_feat, opts.hist_bins).tolist()
    centres = (torch.arange(opts.hist_bins, dtype=torch.float64) + 0.5) / opts.hist_bins
    centre_list = (max_act.double()[:, None] * centres[None]).tolist()
    nonzero_list = nonzero.tolist()
    top_vals_t, top_ids_t = top_vals.T.tolist(), top_ids.T.tolist()  # [F][k]
    res_ids_t = res_ids.permute(2, 0, 1).tolist()  # [F][bin][slot]
    res_order_t = res_keys.argsort(dim=1).permute(2, 0, 1).tolist()
    out: list[FeatureDashboard] = []
    for f in range(n_feat):
        m = max_act_list[f]
        dash = FeatureDashboard(
            index=start + f,
            max_activation=m,
            frac_nonzero=nonzero_list[f] / max(n_counted, 1),
            freq_hist_heights=hist_list[f] if m > 0 else [],
            freq_hist_values=centre_list[f] if m > 0 else [],
        )
        dash.top_examples = [
            example(pid, f) for v, pid in zip(top_vals_t[f], top_ids_t[f], strict=True) if v > 0
        ]
        dash.bin_examples = [
            example(res_ids_t[f][j][slot], f, j)
            for j in range(opts.n_bins)
            for slot in res_order_t[f][j]
            if res_ids_t[f][j][slot] >= 0
        ]
        if n_cos > 0:
            dash.cossim_indices, dash.cossim_values = cos_idx[f], cos_val[f]
        if logit_rows:
            (
                dash.logit_pos_tokens,
                dash.logit_pos_values,
                dash.logit_neg_tokens,
                dash.logit_neg_values,
                dash.logit_hist_heights,
                dash.logit_hist_values,
            ) = logit_rows[f]
        out.append(dash)
    t5 = time.perf_counter()
    logger.info(
        "dashboards: model pass %.2fs, replay %.2fs, examples %.2fs, weights %.2fs, assemble %.2fs",
        t1 - t0,
        t2 - t1,
        t3 - t2,
        t4 - t3,
        t5 - t4,
    )
    return out


def logit_histograms(rows: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Counts [R, n] and bin centres [R, n] of `n` equal bins over each row's [min, max].

    float32 and in-place temporaries: a block is [256, d_vocab], hundreds of MB of passes.
    """
    lo, hi = rows.amin(dim=1, keepdim=True), rows.amax(dim=1, keepdim=True)
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    idx = (rows - lo).mul_(n / span).clamp_(0, n - 1).long()  # >= 0, so truncation is floor
    idx += torch.arange(rows.shape[0])[:, None] * n
    counts = torch.bincount(idx.view(-1), minlength=rows.shape[0] * n).view(-1, n)
    centres = lo.double() + (torch.arange(n, dtype=torch.float64)[None] + 0.5) * span.double() / n
    return counts, centres
