"""Transcoder-set training on the tiny random model: a stop checkpoints every layer and the
rerun resumes them all from the same step; the skip is fitted by least squares."""

from pathlib import Path

import pytest
import torch

from interpedia_core import stopping
from interpedia_trainer.model_runtime import tiny_hooked_model
from interpedia_trainer.recorded import LayerSeries, transcoder_final_metrics
from interpedia_trainer.training import TrainingConfig
from interpedia_trainer.transcoders import (
    TranscoderSetResult,
    fit_skip,
    fit_skips,
    spread_contexts,
    train_transcoder_set,
)


def _base(steps: int) -> TrainingConfig:
    return TrainingConfig(
        d_in=64, d_sae=32, k=4, batch_size=64, total_tokens=64 * steps, context_size=32
    )


def test_a_stopped_set_resumes_every_layer_from_the_same_step(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    model = tiny_hooked_model()
    out = tmp_path / "tc"
    token = stopping.StopToken()
    steps: list[int] = []

    def progress(done: int, total: int, metrics: dict[str, float]) -> None:
        steps.append(int(metrics["step"]))
        if metrics["step"] == 2 and metrics["layer"] == 1:
            token.request("test stop")

    with stopping.stop_scope(token), pytest.raises(stopping.Stopped, match="at step 2"):
        train_transcoder_set(_base(5), model, tiny_corpus, out, layers=[0, 1], on_progress=progress)
    assert not out.exists()  # nothing half-written
    checkpoints = out.with_name("tc.checkpoints")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["layer_0", "layer_1"]

    resumed: list[int] = []
    result = train_transcoder_set(
        _base(5),
        model,
        tiny_corpus,
        out,
        layers=[0, 1],
        on_progress=lambda d, t, m: resumed.append(int(m["step"])),
    )
    assert resumed[0] == 3  # both layers continue at step 3
    assert result.n_tokens == 64 * 5
    assert sorted(p.name for p in out.glob("layer_*.safetensors")) == [
        "layer_0.safetensors",
        "layer_1.safetensors",
    ]
    assert not checkpoints.exists()


def test_training_reads_contexts_from_across_the_corpus_not_its_start() -> None:
    contexts = torch.arange(100).repeat_interleave(9).view(100, 9)  # context i is all i
    chosen = spread_contexts(contexts, total_tokens=8 * 5)  # 5 contexts' worth
    assert chosen[:, 0].tolist() == [0, 25, 50, 74, 99]  # first to last, evenly
    assert torch.equal(spread_contexts(contexts, total_tokens=8 * 100), contexts)


def test_the_skip_is_the_least_squares_linear_map() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 8, generator=g)
    w = torch.randn(6, 8, generator=g)  # [d_out, d_in]
    torch.testing.assert_close(fit_skip(x, x @ w.T, ridge=1e-9), w, atol=1e-3, rtol=1e-3)


def test_the_skip_is_fitted_on_enough_batches_and_they_are_still_trained_on() -> None:
    """A batch of 16 tokens cannot pin down a map from 24 dimensions: the fit reads whole
    batches until it has `n_tokens`, and the stream then replays them from its start."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 24, generator=g)  # [d_out, d_in]: 24 inputs, more than a batch's 16 tokens
    stream = []
    for _ in range(10):
        x = torch.randn(16, 24, generator=g)
        stream.append({3: (x, x @ w.T)})

    skips, replay = fit_skips(iter(stream), n_tokens=64)
    torch.testing.assert_close(skips[3], w, atol=1e-2, rtol=1e-2)
    replayed = list(replay)
    assert len(replayed) == len(stream)
    assert all(a[3][0] is b[3][0] for a, b in zip(replayed, stream, strict=True))
    one_batch = fit_skip(*stream[0][3])
    assert (one_batch - w).abs().max() > 0.1  # what fitting on the first batch alone gave


def test_a_transcoder_runs_step_row_holds_each_layers_metrics_and_their_means() -> None:
    series = LayerSeries([0, 1])
    step = {"step": 10.0, "tokens": 1280.0, "l0": 4.0, "explained_variance": 0.25}
    assert series.add(0, {**step, "dead_fraction": 0.5}) is None  # layer 1 still to come
    row = series.add(1, {**step, "l0": 8.0, "explained_variance": 0.75, "dead_fraction": 0.0})
    assert row is not None
    assert (row["step"], row["tokens"]) == (10.0, 1280.0)
    assert row["layer_0/fvu"] == 0.75 and row["layer_1/fvu"] == 0.25
    assert (row["l0"], row["fvu"], row["dead_fraction"]) == (6.0, 0.5, 0.25)
    # The held-out report at the same step merges into that row.
    final = {"step": 10.0, "tokens": 1280.0, "fvu": 0.4, "l0": 5.0}
    assert series.add(0, final) is None
    merged = series.add(1, {**final, "fvu": 0.6})
    assert merged is not None
    assert merged["layer_0/fvu"] == 0.4 and merged["fvu"] == 0.5 and merged["l0"] == 5.0
    assert merged["layer_1/dead_fraction"] == 0.0  # kept from the step's training report


def test_a_transcoder_runs_final_metrics_read_like_an_sae_runs() -> None:
    result = TranscoderSetResult(
        folder=Path("set"),
        layers=[0, 1],
        d_transcoder=32,
        n_tokens=256,
        seconds=1.0,
        forward_seconds=0.5,
        per_layer={
            0: {"fvu": 0.2, "l0": 4.0, "dead_fraction": 0.0, "dense_fraction": 0.0},
            1: {"fvu": 0.4, "l0": 6.0, "dead_fraction": 0.5, "dense_fraction": 0.0},
        },
    )
    final = transcoder_final_metrics(result)
    assert final["eval/fvu"] == pytest.approx(0.3)
    assert final["eval/explained_variance"] == pytest.approx(0.7)
    assert final["eval/l0"] == 5.0 and final["dead_fraction"] == 0.25
    assert final["layer_1/dead_fraction"] == 0.5 and "layer_1/dense_fraction" not in final
