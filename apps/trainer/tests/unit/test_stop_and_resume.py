"""A stop request ends training, the dashboards pass and a model forward at a safe point,
keeps what is needed to resume, and the resumed work ends where the uninterrupted one does."""

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from sae_lens import SAE

from interpedia_core import stopping
from interpedia_trainer.activations import resume_context
from interpedia_trainer.architectures import ArchitectureOptions, build_training_sae
from interpedia_trainer.dashboards import DashboardOptions, compute_dashboards
from interpedia_trainer.model_runtime import tiny_hooked_model
from interpedia_trainer.training import SAETrainingLoop, TrainingConfig, train_sae

D_IN, BATCH = 16, 64


def _batches(token: stopping.StopToken | None = None, stop_at: int = 0) -> Iterator[torch.Tensor]:
    """The same random batches every time; the stop is requested as batch `stop_at` goes out."""
    g = torch.Generator().manual_seed(0)
    n = 0
    while True:
        n += 1
        if token is not None and n == stop_at:
            token.request("stopped by test")
        yield torch.randn(BATCH, D_IN, generator=g).relu()


def _cfg() -> TrainingConfig:
    # No checkpoint_every_steps: the stop alone must leave a checkpoint.
    return TrainingConfig(d_in=D_IN, d_sae=32, k=4, batch_size=BATCH, total_tokens=BATCH * 12)


def test_a_stopped_run_keeps_a_checkpoint_and_resumes_to_the_same_sae(tmp_path: Path) -> None:
    train_sae(_cfg(), _batches(), tmp_path / "whole")

    token = stopping.StopToken()
    # A fresh run first reads n_batches_for_norm_estimate batches (the decoder bias's mean).
    batches = _batches(token, stop_at=_cfg().n_batches_for_norm_estimate + 5)
    with stopping.stop_scope(token), pytest.raises(stopping.Stopped, match="at step 5 "):
        train_sae(_cfg(), batches, tmp_path / "stopped")  # step 5 ends, then it stops
    assert (tmp_path / "stopped" / "checkpoints" / "latest" / "trainer_state.pt").exists()
    assert not (tmp_path / "stopped" / "cfg.json").exists()  # no finished SAE yet

    resumed = SAETrainingLoop(_cfg(), tmp_path / "stopped")
    assert resumed.load_checkpoint() and resumed.n_steps == 5
    result = resumed.run(batches)  # the rest of the same stream
    assert result.n_steps == 12
    whole = SAE.load_from_disk(tmp_path / "whole")
    torch.testing.assert_close(SAE.load_from_disk(tmp_path / "stopped").W_dec, whole.W_dec)


def test_a_resumed_stream_starts_at_the_context_its_tokens_reached() -> None:
    contexts = torch.tensor([[0, 5, 6, 7], [0, 8, 9, 10], [0, 11, 12, 13]])  # 3 tokens each
    assert resume_context(contexts, [0], 0) == 0
    assert resume_context(contexts, [0], 4) == 1
    assert resume_context(contexts, [0], 6) == 2
    assert resume_context(contexts, [0], 9 + 1) == 0  # the second epoch starts over
    assert resume_context(contexts, [0], 4, exclude_special=False) == 1


N, T = 20, 6


@pytest.fixture(scope="module")
def dashboard_case():
    torch.manual_seed(0)
    tokens = torch.randint(1, 30, (N, T))
    embed = torch.randn(30, D_IN)
    sae = build_training_sae("topk", D_IN, 24, options=ArchitectureOptions(k=4))

    def forward(batch: torch.Tensor) -> torch.Tensor:
        return embed[batch]

    return tokens, forward, sae


def _dashboards(case, **kwargs) -> list:
    tokens, forward, sae = case
    options = DashboardOptions(n_top=3, batch_size=4)
    return compute_dashboards(forward, sae, tokens, options=options, **kwargs)


def test_a_stopped_dashboards_pass_resumes_to_the_same_dashboards(
    dashboard_case, tmp_path: Path
) -> None:
    whole = _dashboards(dashboard_case)
    checkpoint = tmp_path / "pass.pt"
    token = stopping.StopToken()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done == 12:
            token.request("stopped by test")

    with stopping.stop_scope(token), pytest.raises(stopping.Stopped, match="after 12 of 20"):
        _dashboards(dashboard_case, on_progress=progress, checkpoint=checkpoint)
    assert checkpoint.exists()

    seen.clear()
    resumed = _dashboards(
        dashboard_case, on_progress=lambda done, _: seen.append(done), checkpoint=checkpoint
    )
    assert seen == [16, 20]  # only the prompts the stopped pass had not seen
    assert [dataclasses.asdict(d) for d in resumed] == [dataclasses.asdict(d) for d in whole]
    assert not checkpoint.exists()


def test_a_saved_pass_of_other_features_is_not_continued(dashboard_case, tmp_path: Path) -> None:
    checkpoint = tmp_path / "pass.pt"
    token = stopping.StopToken()
    with stopping.stop_scope(token), pytest.raises(stopping.Stopped, match="after 8 of 20"):
        _dashboards(
            dashboard_case,
            feature_range=(0, 8),
            on_progress=lambda done, _: done == 8 and token.request("stopped by test"),
            checkpoint=checkpoint,
        )
    seen: list[int] = []
    _dashboards(
        dashboard_case, on_progress=lambda done, _: seen.append(done), checkpoint=checkpoint
    )
    assert seen[0] == 4  # started over: the saved pass was of features 0:8


def test_a_stop_abandons_a_model_forward_between_blocks() -> None:
    model = tiny_hooked_model(n_layers=2)
    tokens = torch.randint(1, 100, (2, 8))
    token = stopping.StopToken()
    token.request("stopped by test")
    with stopping.stop_scope(token), pytest.raises(stopping.Stopped):
        model.forward_to_hook(tokens, "blocks.1.hook_resid_post")
    # The check hooks are gone again: without a stop the same forward runs.
    assert model.forward_to_hook(tokens, "blocks.1.hook_resid_post").shape == (2, 8, 64)
