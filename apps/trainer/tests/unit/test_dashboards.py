"""Every dashboard statistic against a brute-force computation on a small case."""

import itertools

import pytest
import torch

from interpedia_core.errors import InvalidInput
from interpedia_trainer.architectures import ArchitectureOptions, build_training_sae
from interpedia_trainer.dashboards import (
    DashboardOptions,
    bin_of,
    compute_dashboards,
    sample_keys,
)

N, T, D_IN, D_SAE, VOCAB, BOS = 23, 9, 12, 40, 30, 0


@pytest.fixture(scope="module")
def case():
    torch.manual_seed(0)
    tokens = torch.randint(1, VOCAB, (N, T))
    tokens[:, 0] = BOS
    embed = torch.randn(VOCAB, D_IN)
    pos = torch.randn(T, D_IN) * 0.5

    def forward(batch: torch.Tensor) -> torch.Tensor:
        return embed[batch] + pos[None]

    sae = build_training_sae("topk", D_IN, D_SAE, options=ArchitectureOptions(k=6))
    with torch.no_grad():
        sae.b_enc.add_(torch.randn(D_SAE) * 0.1)
        sae.W_dec.mul_(torch.rand(D_SAE, 1) + 0.5)
    W_U = torch.randn(D_IN, VOCAB)
    return tokens, forward, sae, W_U


def _brute(tokens, forward, sae, start, stop):
    with torch.no_grad():
        acts = sae.encode(forward(tokens).reshape(N * T, D_IN))[:, start:stop]
    acts = acts.reshape(N, T, -1).clone()
    acts[tokens == BOS] = 0
    return acts  # [N, T, F]


def test_every_statistic_matches_brute_force(case) -> None:
    tokens, forward, sae, W_U = case
    start, stop = 3, 37
    opts = DashboardOptions(
        n_top=4, n_bins=3, per_bin=2, hist_bins=7, n_logits=3, n_cossim=4, batch_size=5, seed=11
    )
    dashes = compute_dashboards(
        forward,
        sae,
        tokens,
        W_U=W_U,
        feature_range=(start, stop),
        ignore_token_ids=[BOS],
        options=opts,
    )
    acts = _brute(tokens, forward, sae, start, stop)
    n_counted = int((tokens != BOS).sum())
    W_dec = sae.W_dec.detach()
    unit = W_dec / W_dec.norm(dim=-1, keepdim=True)
    assert [d.index for d in dashes] == list(range(start, stop))
    checked_bins = 0
    for f, dash in enumerate(dashes):
        a = acts[:, :, f]
        m = float(a.max())
        assert dash.max_activation == pytest.approx(m)
        assert dash.frac_nonzero == pytest.approx(float((a > 0).sum()) / n_counted)
        # histogram of non-zero values over [0, max]
        nz = a[a > 0]
        if m > 0:
            expected = torch.bincount(bin_of(nz, torch.tensor(m), 7), minlength=7).tolist()
            assert dash.freq_hist_heights == expected
            assert dash.freq_hist_values == pytest.approx([(i + 0.5) * m / 7 for i in range(7)])
        # top prompts by their max, with per-token values
        pmax = a.max(dim=1).values
        order = sorted(range(N), key=lambda p: (-float(pmax[p]), p))
        want = [p for p in order if pmax[p] > 0][:4]
        assert [e.prompt_index for e in dash.top_examples] == want
        for e in dash.top_examples:
            assert e.values == pytest.approx(a[e.prompt_index].tolist())
            assert e.tokens == tokens[e.prompt_index].tolist()
            assert e.max_value == pytest.approx(float(pmax[e.prompt_index]))
        # bin samples: the per_bin smallest hash keys among prompts in each bin
        keys = sample_keys(torch.arange(N), torch.full((N,), start + f), 11)
        got = [(e.bin_index, e.prompt_index) for e in dash.bin_examples]
        expected_bins = []
        if m > 0:
            bins = bin_of(pmax, torch.tensor(m), 3)
            for j in range(3):
                # the top examples are shown once, above the bins
                members = [p for p in range(N) if pmax[p] > 0 and bins[p] == j and p not in want]
                members.sort(key=lambda p: float(keys[p]))
                expected_bins += [(j, p) for p in members[:2]]
                checked_bins += len(members) > 2
        assert got == expected_bins
        for e in dash.bin_examples:
            assert e.values == pytest.approx(a[e.prompt_index].tolist())
            assert e.bin_min <= e.max_value <= e.bin_max + 1e-6
        # logit lens and its histogram
        row = W_dec[start + f] @ W_U
        top, bottom = row.topk(3), row.topk(3, largest=False)
        assert dash.logit_pos_tokens == top.indices.tolist()
        assert dash.logit_pos_values == pytest.approx(top.values.tolist(), rel=1e-5)
        assert dash.logit_neg_tokens == bottom.indices.tolist()
        assert dash.logit_neg_values == pytest.approx(bottom.values.tolist(), rel=1e-5)
        assert sum(dash.logit_hist_heights) == VOCAB
        edges = torch.linspace(float(row.min()), float(row.max()), 8)
        expected_hist = [
            int(((row >= lo) & (row < hi)).sum()) for lo, hi in itertools.pairwise(edges)
        ]
        expected_hist[-1] += int((row == row.max()).sum())
        assert dash.logit_hist_heights == expected_hist
        # decoder cosine neighbours (self excluded)
        cos = unit[start + f] @ unit.T
        cos[start + f] = -2
        assert dash.cossim_indices == cos.topk(4).indices.tolist()
        assert dash.cossim_values == pytest.approx(cos.topk(4).values.tolist(), rel=1e-5)
    assert checked_bins > 0  # the sampling actually had to choose somewhere


def test_feature_range_split_matches_whole(case) -> None:
    tokens, forward, sae, W_U = case
    opts = DashboardOptions(batch_size=8)
    whole = compute_dashboards(forward, sae, tokens, W_U=W_U, ignore_token_ids=[BOS], options=opts)
    parts = [
        d
        for r in [(0, 13), (13, D_SAE)]
        for d in compute_dashboards(
            forward, sae, tokens, W_U=W_U, feature_range=r, ignore_token_ids=[BOS], options=opts
        )
    ]
    assert whole == parts


def test_bad_range_is_invalid_input(case) -> None:
    tokens, forward, sae, _ = case
    with pytest.raises(InvalidInput, match="feature range"):
        compute_dashboards(forward, sae, tokens, feature_range=(10, 500))
