"""Training on synthetic activations recovers structure; the folder loads in SAELens."""

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from sae_lens import SAE

from interpedia_core.errors import InvalidInput
from interpedia_trainer.metrics import make_evaluator, reconstruction_metrics
from interpedia_trainer.training import SAETrainingLoop, TrainingConfig, train_sae

D_IN, N_TRUE = 32, 48


def _dictionary() -> torch.Tensor:
    g = torch.Generator().manual_seed(123)
    d = torch.randn(N_TRUE, D_IN, generator=g)
    return d / d.norm(dim=-1, keepdim=True)


def _sample(n: int, g: torch.Generator, dictionary: torch.Tensor) -> torch.Tensor:
    """Each token is a sparse (about 3 of 48) positive mix of the true directions."""
    active = torch.rand(n, N_TRUE, generator=g) < 3 / N_TRUE
    coef = torch.rand(n, N_TRUE, generator=g) * 2 + 0.5
    return (active * coef) @ dictionary


def _batches(batch: int, seed: int = 0) -> Iterator[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    dictionary = _dictionary()
    while True:
        yield _sample(batch, g, dictionary)


@pytest.mark.parametrize("architecture", ["topk", "standard", "batchtopk", "jumprelu"])
def test_training_recovers_structure_and_loads(architecture: str, tmp_path: Path) -> None:
    torch.set_flush_denormal(True)
    cfg = TrainingConfig(
        d_in=D_IN,
        d_sae=64,
        architecture=architecture,
        k=4,
        l1_coefficient=0.3,
        l0_coefficient=0.01,
        lr=1e-2 if architecture != "jumprelu" else 3e-3,
        batch_size=256,
        total_tokens=256 * 300,
        hook_name="blocks.0.hook_resid_post",
        model_name="synthetic",
        log_every_steps=50,
    )
    held_out = _sample(2048, torch.Generator().manual_seed(99), _dictionary())
    seen: list[dict[str, float]] = []
    result = train_sae(
        cfg, _batches(256), tmp_path, evaluator=make_evaluator(held_out), on_metrics=seen.append
    )
    assert result.n_tokens == cfg.total_tokens
    assert seen and "eval/explained_variance" in seen[-1]
    assert (tmp_path / "cfg.json").exists() and (tmp_path / "sparsity.safetensors").exists()

    sae = SAE.load_from_disk(tmp_path)
    metrics = reconstruction_metrics(sae, held_out)
    floor = {"topk": 0.9, "batchtopk": 0.9, "standard": 0.85, "jumprelu": 0.6}[architecture]
    assert metrics["explained_variance"] > floor, metrics
    if architecture in ("topk", "batchtopk"):
        # Most true directions have a decoder row pointing the same way.
        dec = sae.W_dec.detach() / sae.W_dec.detach().norm(dim=-1, keepdim=True)
        best = (_dictionary() @ dec.T).max(dim=1).values
        assert (best > 0.9).float().mean() > 0.7, best


def test_resume_continues_from_checkpoint(tmp_path: Path) -> None:
    cfg = TrainingConfig(
        d_in=D_IN, d_sae=64, k=4, batch_size=128, total_tokens=128 * 20, checkpoint_every_steps=5
    )
    loop = SAETrainingLoop(cfg, tmp_path)
    batches = _batches(128)
    for _ in range(10):
        loop.step(next(batches))
    loop.save_checkpoint()
    resumed = SAETrainingLoop(cfg, tmp_path)
    assert resumed.load_checkpoint()
    assert resumed.n_tokens == 128 * 10
    torch.testing.assert_close(resumed.sae.W_dec, loop.sae.W_dec)
    result = resumed.run(batches)
    assert result.n_tokens == cfg.total_tokens and result.n_steps == 20


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"d_sae": 0}, "d_sae must be positive"),
        ({"d_sae": 8, "k": 9}, "cannot exceed d_sae"),
        ({"architecture": "gatedx"}, "unknown architecture"),
        ({"total_tokens": 10}, "smaller than one batch"),
        ({"normalize_activations": "layer"}, "normalize_activations must be one of"),
        ({"dead_feature_window": 0}, "dead_feature_window must be positive"),
    ],
)
def test_bad_config_is_invalid_input(changes: dict, message: str, tmp_path: Path) -> None:
    base = {"d_in": 8, "d_sae": 16, "k": 2, "batch_size": 64, "total_tokens": 640}
    with pytest.raises(InvalidInput, match=message):
        SAETrainingLoop(TrainingConfig(**{**base, **changes}), tmp_path)


@pytest.mark.parametrize("b_dec_init", ["mean", "zeros"])
def test_input_statistics_set_the_scale_and_the_decoder_bias(b_dec_init: str, tmp_path) -> None:
    cfg = TrainingConfig(
        d_in=D_IN,
        d_sae=64,
        k=4,
        batch_size=128,
        total_tokens=128 * 4,
        normalize_activations="expected_average_only_in",
        n_batches_for_norm_estimate=3,
        b_dec_init=b_dec_init,
    )
    loop = SAETrainingLoop(cfg, tmp_path)
    batches = [b + 5.0 for b in itertools.islice(_batches(128), 3)]  # far from the origin
    loop.estimate_input_statistics(iter(batches))
    seen = torch.cat(batches)
    scale = D_IN**0.5 / float(seen.norm(dim=-1).mean())
    assert loop.scaler.scaling_factor == pytest.approx(scale, rel=1e-5)
    expected = seen.mean(0) * scale if b_dec_init == "mean" else torch.zeros(D_IN)
    torch.testing.assert_close(loop.sae.b_dec.detach(), expected, rtol=1e-5, atol=1e-6)
