"""Bench: our SAE trainer vs SAELens's `SAETrainer` on the same cached activations.

Caches SmolLM2-135M `blocks.6.hook_resid_post` activations of the SOTU corpus once
(.cache/bench/acts-L6), then trains standard (L1) and TopK (k=32) SAEs, d_in 576,
d_sae 4608, batch 4096, with both trainers from the same initial weights on the same
batch order. The two trainers take turns step by step, so load from other processes on
this shared machine falls on both alike. Prints tokens/s (from the median step time), the
ratio, each as a share of this machine's fp32 matmul peak (measured here, at
10·d_in·d_sae FLOP per token: the dense step's cost), and held-out explained variance at
equal tokens.

    .venv/bin/python bench/train/run.py [--steps 24] [--k 32]
"""

import argparse
import itertools
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged model is local; never ask the hub

import torch
from sae_lens import SAETrainer
from sae_lens.config import LoggingConfig, SAETrainerConfig

from interpedia_trainer.activations import cache_activations
from interpedia_trainer.architectures import build_training_sae
from interpedia_trainer.corpus import tokenize_corpus
from interpedia_trainer.metrics import reconstruction_metrics
from interpedia_trainer.model_runtime import load_hooked_model
from interpedia_trainer.training import SAETrainingLoop, TrainingConfig

ROOT = Path(__file__).resolve().parents[2]
D_IN, D_SAE, BATCH, HOOK = 576, 4608, 4096, "blocks.6.hook_resid_post"


def matmul_peak() -> float:
    """fp32 GFLOP/s of the step's own matmul shape, best of a few."""
    a, b = torch.randn(BATCH, D_IN), torch.randn(D_IN, D_SAE)
    a @ b
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * BATCH * D_IN * D_SAE / (time.perf_counter() - t) / 1e9)
    return best


def get_activations(n_contexts: int) -> tuple[torch.Tensor, torch.Tensor]:
    corpus = ROOT / ".cache/corpora/sotu"
    model = load_hooked_model()
    contexts = tokenize_corpus(corpus, model.tokenizer, context_size=128, max_contexts=n_contexts)
    t = time.perf_counter()
    cache = cache_activations(model, HOOK, contexts, ROOT / ".cache/bench/acts-L6")
    print(f"activations: {cache.n_tokens} tokens cached/reused in {time.perf_counter() - t:.1f} s")
    acts = cache.load_all()
    return acts[:-8192], acts[-8192:]


def batches(train: torch.Tensor, seed: int):
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(train.shape[0], generator=g)
        for i in range(0, train.shape[0] - BATCH + 1, BATCH):
            yield train[perm[i : i + BATCH]]


def ours(arch: str, k: int, l1: float, steps: int, lr: float):
    """Our trainer: (its SAE, after training; one step on a batch)."""
    cfg = TrainingConfig(
        d_in=D_IN,
        d_sae=D_SAE,
        architecture=arch,
        k=k,
        l1_coefficient=l1,
        lr=lr,
        batch_size=BATCH,
        total_tokens=BATCH * steps,
        seed=0,
        log_every_steps=10**9,
    )
    loop = SAETrainingLoop(cfg, ROOT / ".cache/bench/out" / f"ours-{arch}")
    return (lambda: loop.sae), loop.step


def saelens(arch: str, k: int, l1: float, steps: int, lr: float, train: torch.Tensor):
    """SAELens's `SAETrainer` on the same initial weights: (its SAE; one step on a batch)."""
    torch.manual_seed(0)
    sae = build_training_sae(arch, D_IN, D_SAE, k=k, l1_coefficient=l1)
    cfg = SAETrainerConfig(
        total_training_samples=BATCH * steps,
        train_batch_size_samples=BATCH,
        lr=lr,
        lr_end=lr,
        device="cpu",
        logger=LoggingConfig(log_to_wandb=False),
        n_batches_for_norm_estimate=1,
    )
    trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=batches(train, 1))

    def step(batch: torch.Tensor) -> None:
        trainer.step(batch)
        trainer.n_training_steps += 1

    return (lambda: sae), step


def run_pair(arch: str, k: int, l1: float, steps: int, train: torch.Tensor, lr: float):
    """Both trainers, stepping in turn on the same batches: {name: (SAE, tokens/s)}.

    Alternating steps means load from other processes falls on both alike; tokens/s comes
    from the median step. The first step of each is a warm-up and is not timed.
    """
    trainers = {
        "ours": ours(arch, k, l1, steps, lr),
        "saelens": saelens(arch, k, l1, steps, lr, train),
    }
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for n, batch in enumerate(itertools.islice(batches(train, 1), steps)):
        for name, (_, step) in trainers.items():
            own = batch.clone()  # neither trainer sees what the other did to its input
            t = time.perf_counter()
            step(own)
            if n:
                times[name].append(time.perf_counter() - t)
    return {
        name: (get_sae(), BATCH / statistics.median(times[name]))
        for name, (get_sae, _) in trainers.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--contexts", type=int, default=640)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    train, held_out = get_activations(args.contexts)
    peak = matmul_peak()
    flop = 10 * D_IN * D_SAE
    print(
        f"device cpu, {torch.get_num_threads()} threads, fp32; d_in {D_IN}, d_sae {D_SAE}, "
        f"batch {BATCH}, {args.steps} steps; matmul peak {peak:.1f} GFLOP/s; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        "  (share of peak counts a dense step's 10·d_in·d_sae FLOP per token; a sparse TopK "
        "decoder does less, so it can pass 100%)"
    )
    for arch, l1, lr in [("topk", 0.0, 3e-4), ("standard", 5.0, 3e-4)]:
        rows = {}
        for name, (sae, tps) in run_pair(arch, args.k, l1, args.steps, train, lr).items():
            ev = reconstruction_metrics(sae, held_out)["explained_variance"]
            rows[name] = tps
            print(
                f"  {arch:8s} {name:8s} {tps:8.0f} tokens/s  {tps * flop / 1e9 / peak:6.1%} of peak"
                f"  explained variance {ev:.4f} after {BATCH * args.steps} tokens"
            )
        print(f"  {arch:8s} speed-up {rows['ours'] / rows['saelens']:.2f}x")


if __name__ == "__main__":
    main()
