"""Trains every fast architecture on fixed global batches; run by test_distributed.py.

`python ddp_worker.py OUT` trains in one process; under `torchrun --nproc-per-node N`
each rank trains on its slice of the same global batches. Rank 0 writes OUT/<arch>/.
"""

import sys
from collections.abc import Iterator
from pathlib import Path

import torch

from interpedia_trainer.distributed import DataParallel, join_from_environment, leave
from interpedia_trainer.training import SAETrainingLoop, TrainingConfig

D_IN, BATCH, STEPS = 16, 128, 8
ARCHITECTURES = ("topk", "batchtopk", "matryoshka_batchtopk", "standard")


def global_batches(seed: int = 0) -> Iterator[torch.Tensor]:
    """Sparse mixes of 48 fixed directions, the same on every rank."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(48, D_IN, generator=g)
    while True:
        active = torch.rand(BATCH, 48, generator=g) < 0.06
        yield (active * (torch.rand(BATCH, 48, generator=g) * 3 + 1)) @ directions


def rank_batches(parallel: DataParallel) -> Iterator[torch.Tensor]:
    size = BATCH // parallel.world_size
    for batch in global_batches():
        yield batch[parallel.rank * size : (parallel.rank + 1) * size]


def config(architecture: str) -> TrainingConfig:
    return TrainingConfig(
        d_in=D_IN,
        d_sae=256,
        architecture=architecture,
        k=2,
        lr=3e-3,
        batch_size=BATCH,
        total_tokens=BATCH * STEPS,
        dead_feature_window=2,  # AuxK revives latents from the third step on
        normalize_activations="expected_average_only_in",
        n_batches_for_norm_estimate=2,
        checkpoint_every_steps=STEPS,
        log_every_steps=1,
    )


def main(out: Path) -> None:
    torch.set_flush_denormal(True)
    parallel = join_from_environment("cpu")
    try:
        for architecture in ARCHITECTURES:
            loop = SAETrainingLoop(config(architecture), out / architecture, parallel)
            loop.run(rank_batches(parallel))
    finally:
        leave()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
