"""Transcoder-set training on the tiny random model: a stop checkpoints every layer and the
rerun resumes them all from the same step; the skip is fitted by least squares."""

from pathlib import Path

import pytest
import torch

from interpedia_core import stopping
from interpedia_trainer.model_runtime import tiny_hooked_model
from interpedia_trainer.training import TrainingConfig
from interpedia_trainer.transcoders import fit_skip, fit_skips, train_transcoder_set


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
