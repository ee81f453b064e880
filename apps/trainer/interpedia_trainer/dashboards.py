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

A stop request (`interpedia_core.stopping`) ends the pass between model batches; with a
`checkpoint` file the codes streamed so far are saved there, and the rerun (same prompts,
same SAE) continues the pass after them instead of starting over.
"""

import gc
import hashlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from interpedia_core import stopping
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
    checkpoint: Path | None = None,
) -> list[FeatureDashboard]:
    """Dashboards for features [start, stop) of `sae` over `tokens`; one model pass.

    `forward_to_hook` runs the model up to the SAE's hook (stop early) and returns the
    hook's activations; `sae` is anything with `encode` and `W_dec` (a SAELens SAE).
    `checkpoint`: where a stopped pass is saved and resumed from (removed when done).
    """
    opts = options or DashboardOptions()
    d_sae = int(sae.W_dec.shape[0])
    start, stop = feature_range or (0, d_sae)
    if not 0 <= start < stop <= d_sae:
        raise InvalidInput(f"feature range [{start}, {stop}) is outside 0..{d_sae}")
    if tokens.ndim != 2 or tokens.shape[0] == 0:
        raise InvalidInput("dashboards need at least one prompt of tokens [n_prompts, seq]")
    ignore = torch.tensor(sorted(set(ignore_token_ids)), dtype=torch.long)
    times = [time.perf_counter()]
    key = _pass_key(sae, tokens, (start, stop), ignore, opts.batch_size)
    state = _Pass.resume(checkpoint, key) if checkpoint is not None else None
    state = state or _Pass([], torch.zeros(stop - start))
    try:
        _stream_codes(forward_to_hook, sae, tokens, (start, stop), ignore, opts, on_progress, state)
        chunks, max_act = state.chunks, state.max_act
        times.append(time.perf_counter())
        stopping.check()  # the pass is whole now: a rerun only redoes what follows
        stats = _replay(chunks, max_act, tokens.shape[1], start, opts)
        times.append(time.perf_counter())
        stopping.check()
        with _gc_paused():
            examples = _Examples(chunks, stats, tokens, max_act, opts)
            times.append(time.perf_counter())
            weights = weight_statistics(sae.W_dec.detach().float(), W_U, (start, stop), opts)
            times.append(time.perf_counter())
            n_counted = int((~torch.isin(tokens.reshape(-1), ignore)).sum())
            out = _assemble(start, max_act, stats, examples, weights, n_counted, opts)
        times.append(time.perf_counter())
    except stopping.Stopped as exc:
        if checkpoint is None:
            raise
        state.save(checkpoint, key)
        raise exc.at(
            f"after {state.next_prompt} of {tokens.shape[0]} prompts; "
            f"the pass so far is in {checkpoint}; rerun to continue"
        ) from None
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    logger.info(
        "dashboards: model pass %.2fs, replay %.2fs, examples %.2fs, weights %.2fs, assemble %.2fs",
        *(b - a for a, b in itertools.pairwise(times)),
    )
    return out


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while the result's lists are built.

    They are millions of acyclic objects; every collection the allocations trigger walks
    all of them again, which made building the same results take 0.3 s or 1.2 s by chance.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class _Pass:
    """The model pass so far: the chunks streamed and each feature's running max."""

    chunks: list[_Chunk]
    max_act: torch.Tensor  # [F]

    @property
    def next_prompt(self) -> int:
        return sum(c.n_prompts for c in self.chunks)

    def save(self, path: Path, key: dict[str, Any]) -> None:
        """Write the pass atomically (a temp file renamed over the checkpoint)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fields = ("first_prompt", "n_prompts", "token_rows", "features", "values")
        torch.save(
            {
                "key": key,
                "max_act": self.max_act,
                **{name: [getattr(c, name) for c in self.chunks] for name in fields},
            },
            tmp,
        )
        tmp.replace(path)

    @classmethod
    def resume(cls, path: Path, key: dict[str, Any]) -> "_Pass | None":
        """The saved pass, if `path` holds one of the same prompts, SAE and feature range."""
        if not path.is_file():
            return None
        try:
            saved = torch.load(path, weights_only=True)
        except (OSError, RuntimeError, EOFError) as exc:  # a file cut short: start over
            logger.warning("ignoring unreadable dashboards checkpoint %s (%s)", path, exc)
            return None
        if saved.get("key") != key:
            logger.info("dashboards checkpoint %s is of another pass: starting over", path)
            return None
        chunks = [
            _Chunk(*values)
            for values in zip(
                saved["first_prompt"],
                saved["n_prompts"],
                saved["token_rows"],
                saved["features"],
                saved["values"],
                strict=True,
            )
        ]
        logger.info("resuming the dashboards pass at prompt %d", sum(c.n_prompts for c in chunks))
        return cls(chunks, saved["max_act"])


def _pass_key(
    sae: Any,
    tokens: torch.Tensor,
    feature_range: tuple[int, int],
    ignore: torch.Tensor,
    batch_size: int,
) -> dict[str, Any]:
    """What a saved pass must match to be continued: the prompts, the SAE and the split."""

    def digest(tensor: torch.Tensor) -> str:
        return hashlib.sha256(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()

    return {
        "tokens": digest(tokens),
        "W_dec": digest(sae.W_dec.float()),
        "feature_range": list(feature_range),
        "ignore": ignore.tolist(),
        "batch_size": batch_size,
    }


def _stream_codes(
    forward_to_hook: ForwardToHook,
    sae: Any,
    tokens: torch.Tensor,
    feature_range: tuple[int, int],
    ignore: torch.Tensor,
    opts: DashboardOptions,
    on_progress: Callable[[int, int], None] | None,
    state: _Pass,
) -> None:
    """The one model pass: the non-zero codes of every batch, and each feature's max.

    Continues `state` (from its next prompt) and adds to it batch by batch, so a stop
    between batches leaves it whole up to there.
    """
    start, stop = feature_range
    n_prompts, seq_len = tokens.shape
    batch_size = opts.batch_size
    for first in range(state.next_prompt, n_prompts, batch_size):
        stopping.check()
        batch_tokens = tokens[first : first + batch_size]
        b = batch_tokens.shape[0]
        with torch.no_grad():
            resid = forward_to_hook(batch_tokens)  # [b, T, d_in]
            acts = sae.encode(resid.reshape(b * seq_len, -1).to(sae.W_dec.dtype))
            acts = acts[:, start:stop]  # [b*T, F], a view
            # nonzero() then filter: the triples are ~L0 per token, the block is d_sae wide
            rows, feats = (acts > 0).nonzero(as_tuple=True)
            values = acts[rows, feats].float()
        counted = ~torch.isin(batch_tokens.reshape(-1)[rows], ignore)
        rows, feats, values = rows[counted], feats[counted], values[counted]
        state.chunks.append(_Chunk(first, b, rows, feats, values))
        state.max_act.scatter_reduce_(0, feats, values, "amax")
        if on_progress is not None:
            on_progress(first + b, n_prompts)
        del acts, resid


@dataclass
class _Replayed:
    """Per-feature counts and the prompts chosen for display, from the stored codes."""

    nonzero: torch.Tensor  # [F] tokens where the feature fired
    hist: torch.Tensor  # [F, hist_bins] counts of non-zero values over [0, max]
    top_vals: torch.Tensor  # [k, F] the k largest prompt maxima, descending
    top_ids: torch.Tensor  # [k, F] their prompts
    res_keys: torch.Tensor  # [n_bins, per_bin, F] the sample keys kept per bin
    res_ids: torch.Tensor  # [n_bins, per_bin, F] their prompts (-1: slot empty)


def _replay(
    chunks: list[_Chunk], max_act: torch.Tensor, seq_len: int, start: int, opts: DashboardOptions
) -> _Replayed:
    """Histograms, running top-k and bottom-k bin samples, with the bins now fixed by max."""
    n_feat = max_act.numel()
    n_prompts = sum(c.n_prompts for c in chunks)
    feature_ids = torch.arange(start, start + n_feat)
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
    return _Replayed(
        nonzero, hist.view(n_feat, opts.hist_bins), top_vals, top_ids, res_keys, res_ids
    )


class _Examples:
    """Per-token values of the (prompt, feature) pairs shown, read from the stored codes.

    Only those pairs are kept ([n_pairs, T]); each chunk's triples are matched against a
    lookup table of its pairs, so no chunk is ever densified.
    """

    def __init__(
        self,
        chunks: list[_Chunk],
        stats: _Replayed,
        tokens: torch.Tensor,
        max_act: torch.Tensor,
        opts: DashboardOptions,
    ) -> None:
        n_feat, seq_len = max_act.numel(), tokens.shape[1]
        top_mask, res_mask = stats.top_vals > 0, stats.res_ids >= 0
        pair_pid = torch.cat([stats.top_ids[top_mask], stats.res_ids[res_mask]])
        pair_f = torch.cat([torch.nonzero(top_mask)[:, 1], torch.nonzero(res_mask)[:, 2]])
        pairs = (pair_pid * n_feat + pair_f).unique()  # sorted, so grouped by prompt
        pair_pid, pair_f = pairs // n_feat, pairs % n_feat
        values = torch.zeros(pairs.numel(), seq_len)
        pair_chunk = pair_pid // opts.batch_size
        for ci in pair_chunk.unique().tolist():
            sel = (pair_chunk == ci).nonzero(as_tuple=True)[0]
            chunk = chunks[ci]
            table = torch.full((chunk.n_prompts * n_feat,), -1, dtype=torch.long)
            table[(pair_pid[sel] - chunk.first_prompt) * n_feat + pair_f[sel]] = sel
            prompt, pos = chunk.token_rows // seq_len, chunk.token_rows % seq_len
            hit = table[prompt * n_feat + chunk.features]
            shown = hit >= 0
            values[hit[shown], pos[shown]] = chunk.values[shown]
        # Python lists in bulk: one tolist() per table is far cheaper than one per example.
        self._index = {
            (p, f): n
            for n, (p, f) in enumerate(zip(pair_pid.tolist(), pair_f.tolist(), strict=True))
        }
        self._values = values.tolist()
        self._argmax = values.argmax(dim=1).tolist() if values.numel() else []
        self._max = values.amax(dim=1).tolist() if values.numel() else []
        self._tokens = {p: tokens[p].tolist() for p in pair_pid.unique().tolist()}
        self._max_act = max_act.tolist()
        self._n_bins = opts.n_bins

    def get(self, pid: int, f: int, bin_index: int | None = None) -> ActivationExample:
        n = self._index[(pid, f)]
        width = self._max_act[f] / self._n_bins
        in_bin = bin_index is not None
        return ActivationExample(
            prompt_index=pid,
            tokens=self._tokens[pid],
            values=self._values[n],
            max_value=self._max[n],
            max_value_token_index=self._argmax[n],
            bin_index=bin_index,
            bin_min=bin_index * width if in_bin else None,
            bin_max=(bin_index + 1) * width if in_bin else None,
        )


@dataclass
class WeightStatistics:
    """What a feature's page shows that depends on the weights alone, one list per feature."""

    cos_idx: list[list[int]] = field(default_factory=list)
    cos_val: list[list[float]] = field(default_factory=list)
    # (pos tokens, pos values, neg tokens, neg values, hist heights, hist centres)
    logit_rows: list[tuple[list, list, list, list, list, list]] = field(default_factory=list)


def weight_statistics(
    W_dec: torch.Tensor,  # [d_sae, d_in]
    W_U: torch.Tensor | None,  # [d_in, d_vocab]
    feature_range: tuple[int, int],
    opts: DashboardOptions,
    block: int = 256,
) -> WeightStatistics:
    """Decoder-cosine neighbours and the logit lens with its histogram, in feature blocks.

    A block's logits are [block, d_vocab] (50 MB for SmolLM2): the buffers are allocated
    once and reused, because a fresh allocation that size is page-faulted in each time
    and that cost as much as the arithmetic.
    """
    start, stop = feature_range
    d_sae = W_dec.shape[0]
    unit = W_dec / W_dec.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    n_cos = min(opts.n_cossim, d_sae - 1)
    out = WeightStatistics()
    lens = _LogitLens(W_U, min(block, stop - start), opts) if W_U is not None else None
    for b0 in range(start, stop, block):
        b1 = min(b0 + block, stop)
        if n_cos > 0:
            cos = unit[b0:b1] @ unit.T  # [blk, d_sae]
            cos[torch.arange(b1 - b0), torch.arange(b0, b1)] = -torch.inf
            top = cos.topk(n_cos, dim=1)
            out.cos_idx += top.indices.tolist()
            out.cos_val += top.values.tolist()
        if lens is not None:
            out.logit_rows += lens.rows(W_dec[b0:b1])
    return out


class _LogitLens:
    """Top and bottom unembedding logits of decoder rows, and their histograms.

    Each pass over a [block, d_vocab] block of logits streams 50 MB, so the arithmetic is
    arranged to make few: the row's min and max come from the top-k that is needed anyway,
    and the histogram's bin indices are computed in place in reused buffers.
    """

    def __init__(self, W_U: torch.Tensor, block: int, opts: DashboardOptions) -> None:
        # contiguous: the tied unembedding is a transposed view, 10% slower in the matmul
        self.W_U = W_U.float().contiguous()
        self.n_logits, self.n = opts.n_logits, opts.hist_bins
        d_vocab = W_U.shape[1]
        self._logits = torch.empty(block, d_vocab)
        self._scaled = torch.empty(block, d_vocab)
        self._bins = torch.empty(block, d_vocab, dtype=torch.int32)
        # row i counts into bincount slots [i*n, i*n + n)
        self._offsets = (torch.arange(block, dtype=torch.int32) * self.n)[:, None]

    def rows(self, W_dec_block: torch.Tensor) -> list[tuple[list, list, list, list, list, list]]:
        r, k = W_dec_block.shape[0], max(self.n_logits, 1)
        logits = torch.matmul(W_dec_block, self.W_U, out=self._logits[:r])  # [r, d_vocab]
        pos = logits.topk(k, dim=1)
        neg = logits.topk(k, dim=1, largest=False)
        heights, centres = self._histograms(logits, lo=neg.values[:, :1], hi=pos.values[:, :1])
        n = self.n_logits
        return list(
            zip(
                pos.indices[:, :n].tolist(),
                pos.values[:, :n].tolist(),
                neg.indices[:, :n].tolist(),
                neg.values[:, :n].tolist(),
                heights.tolist(),
                centres.tolist(),
                strict=True,
            )
        )

    def _histograms(
        self, logits: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Counts [r, n] and bin centres [r, n] of `n` equal bins over each row's [lo, hi]."""
        r, n = logits.shape[0], self.n
        span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
        scaled, bins = self._scaled[:r], self._bins[:r]
        torch.sub(logits, lo, out=scaled).mul_(n / span).clamp_(0, n - 1)
        bins.copy_(scaled)  # values are >= 0, so truncation is floor
        bins += self._offsets[:r]
        counts = torch.bincount(bins.view(-1), minlength=r * n).view(r, n)
        steps = torch.arange(n, dtype=torch.float64)[None] + 0.5
        return counts, lo.double() + steps * span.double() / n


def _assemble(
    start: int,
    max_act: torch.Tensor,
    stats: _Replayed,
    examples: _Examples,
    weights: WeightStatistics,
    n_counted: int,
    opts: DashboardOptions,
) -> list[FeatureDashboard]:
    """One `FeatureDashboard` per feature, from the tables converted to lists in bulk."""
    n_feat = max_act.numel()
    max_act_list = max_act.tolist()
    hist_list = stats.hist.tolist()
    centres = (torch.arange(opts.hist_bins, dtype=torch.float64) + 0.5) / opts.hist_bins
    centre_list = (max_act.double()[:, None] * centres[None]).tolist()
    nonzero_list = stats.nonzero.tolist()
    top_vals_t, top_ids_t = stats.top_vals.T.tolist(), stats.top_ids.T.tolist()  # [F][k]
    res_ids_t = stats.res_ids.permute(2, 0, 1).tolist()  # [F][bin][slot]
    res_order_t = stats.res_keys.argsort(dim=1).permute(2, 0, 1).tolist()
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
            examples.get(pid, f)
            for v, pid in zip(top_vals_t[f], top_ids_t[f], strict=True)
            if v > 0
        ]
        dash.bin_examples = [
            examples.get(res_ids_t[f][j][slot], f, j)
            for j in range(opts.n_bins)
            for slot in res_order_t[f][j]
            if res_ids_t[f][j][slot] >= 0
        ]
        if weights.cos_idx:
            dash.cossim_indices, dash.cossim_values = weights.cos_idx[f], weights.cos_val[f]
        if weights.logit_rows:
            (
                dash.logit_pos_tokens,
                dash.logit_pos_values,
                dash.logit_neg_tokens,
                dash.logit_neg_values,
                dash.logit_hist_heights,
                dash.logit_hist_values,
            ) = weights.logit_rows[f]
        out.append(dash)
    return out
