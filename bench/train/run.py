"""Bench: our SAE trainer vs SAELens's `SAETrainer` on the same cached activations.

Caches SmolLM2-135M `blocks.6.hook_resid_post` activations of the SOTU corpus once
(.cache/bench/acts-L6), scales them to mean norm sqrt(d_in) (what the demo trains on), then
trains each architecture, d_in 576, d_sae 4608, batch 4096, lr 2e-3, with both trainers
from the same initial weights (SAELens's, with the decoder bias at the mean input: our
default start) on the same batch order:

- TopK (k 32), BatchTopK, Matryoshka BatchTopK, all with AuxK dead-latent revival on
  (a latent is dead after `--dead-window` steps without firing, in both trainers);
- standard (ReLU + L1);
- TopK again from SAELens's zero decoder bias, where about half the latents stay dead for
  the whole run: our AuxK costs in proportion to the dead latents, SAELens's does not, so
  this is our worst case.

The two trainers take turns step by step, so load from other processes on this shared
machine falls on both alike. Prints tokens/s (from the median step time), the ratio, each
as a share of this machine's fp32 matmul peak (measured here, at 10·d_in·d_sae FLOP per
token: the dense step's cost), and held-out explained variance, L0 and dead fraction (no
firing on the 8,192 held-out tokens) of the inference SAEs at equal tokens.

Then data-parallel overhead: the TopK+AuxK step on 1 process (all threads) against 2
torchrun ranks on gloo splitting the same global batch (threads shared out), rounds
alternating, with the time of the gradient all-reduce.

    .venv/bin/python bench/train/run.py [--steps 40] [--k 32] [--dead-window 4] [--skip-ddp]
"""

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged model is local; never ask the hub

import torch
from sae_lens import SAETrainer
from sae_lens.config import LoggingConfig, SAETrainerConfig

from interpedia_trainer.activations import CachedActivations, cache_activations
from interpedia_trainer.architectures import ArchitectureOptions, build_training_sae, inference_sae
from interpedia_trainer.corpus import tokenize_corpus
from interpedia_trainer.distributed import DataParallel, join_from_environment, leave
from interpedia_trainer.metrics import reconstruction_metrics
from interpedia_trainer.model_runtime import load_hooked_model
from interpedia_trainer.training import SAETrainingLoop, TrainingConfig

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache/bench/acts-L6"
D_IN, D_SAE, BATCH, HOOK, LR = 576, 4608, 4096, "blocks.6.hook_resid_post", 2e-3
HELD_OUT = 8192


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


def scaled_activations() -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) activations scaled to mean norm sqrt(d_in)."""
    acts = CachedActivations.open(CACHE).load_all()
    acts = acts * (D_IN**0.5 / acts.norm(dim=-1).mean())
    return acts[:-HELD_OUT], acts[-HELD_OUT:]


def cache(n_contexts: int) -> None:
    corpus = ROOT / ".cache/corpora/sotu"
    model = load_hooked_model()
    contexts = tokenize_corpus(corpus, model.tokenizer, context_size=128, max_contexts=n_contexts)
    t = time.perf_counter()
    cached = cache_activations(model, HOOK, contexts, CACHE)
    print(f"activations: {cached.n_tokens} tokens cached/reused in {time.perf_counter() - t:.1f} s")


def batches(train: torch.Tensor, seed: int) -> Iterator[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(train.shape[0], generator=g)
        for i in range(0, train.shape[0] - BATCH + 1, BATCH):
            yield train[perm[i : i + BATCH]]


def ours(arch: str, k: int, l1: float, steps: int, dead_window: int, b_dec: torch.Tensor | None):
    """Our trainer: (its inference SAE, after training; one step on a batch)."""
    cfg = TrainingConfig(
        d_in=D_IN,
        d_sae=D_SAE,
        architecture=arch,
        k=k,
        l1_coefficient=l1,
        lr=LR,
        batch_size=BATCH,
        total_tokens=BATCH * steps,
        dead_feature_window=dead_window,
        b_dec_init="zeros",  # set below, as for SAELens's
        seed=0,
        log_every_steps=10**9,
    )
    loop = SAETrainingLoop(cfg, ROOT / ".cache/bench/out" / f"ours-{arch}")
    if b_dec is not None:
        loop.sae.b_dec.data.copy_(b_dec)
    return loop.inference_sae, loop.step


def saelens(
    arch: str,
    k: int,
    l1: float,
    steps: int,
    dead_window: int,
    b_dec: torch.Tensor | None,
    train: torch.Tensor,
):
    """SAELens's `SAETrainer` on the same initial weights: (its inference SAE; one step)."""
    torch.manual_seed(0)
    sae = build_training_sae(arch, D_IN, D_SAE, options=ArchitectureOptions(k=k, l1_coefficient=l1))
    if b_dec is not None:
        sae.b_dec.data.copy_(b_dec)
    cfg = SAETrainerConfig(
        total_training_samples=BATCH * steps,
        train_batch_size_samples=BATCH,
        lr=LR,
        lr_end=LR,
        device="cpu",
        dead_feature_window=dead_window,
        logger=LoggingConfig(log_to_wandb=False),
        n_batches_for_norm_estimate=1,
    )
    trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=batches(train, 1))

    def step(batch: torch.Tensor) -> None:
        trainer.step(batch)
        trainer.n_training_steps += 1

    return (lambda: inference_sae(sae)), step


def run_pair(
    arch: str,
    k: int,
    l1: float,
    steps: int,
    dead_window: int,
    b_dec: torch.Tensor | None,
    train: torch.Tensor,
):
    """Both trainers, stepping in turn on the same batches: {name: (SAE, tokens/s)}.

    Both start from the same weights (SAELens's initialisation, with the decoder bias at
    `b_dec` if given). Alternating steps means load from other processes falls on both
    alike; tokens/s comes from the median step. The first step of each is a warm-up.
    """
    trainers = {
        "ours": ours(arch, k, l1, steps, dead_window, b_dec),
        "saelens": saelens(arch, k, l1, steps, dead_window, b_dec, train),
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


def compare_trainers(args: argparse.Namespace) -> None:
    train, held_out = scaled_activations()
    peak = matmul_peak()
    flop = 10 * D_IN * D_SAE
    print(
        f"device cpu, {torch.get_num_threads()} threads, fp32; d_in {D_IN}, d_sae {D_SAE}, "
        f"batch {BATCH}, {args.steps} steps, lr {LR}, AuxK dead window {args.dead_window} "
        f"steps; matmul peak {peak:.1f} GFLOP/s; load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs"
    )
    print(
        "  (share of peak counts a dense step's 10·d_in·d_sae FLOP per token; a sparse TopK "
        "decoder does less, so it can pass 100%)"
    )
    # Our default start (b_dec at the mean input) for every architecture, then TopK from
    # SAELens's own zero b_dec, where about half the latents stay dead: AuxK's worst case.
    mean = next(batches(train, 1)).mean(0)
    cases = [
        ("topk", 0.0, mean),
        ("batchtopk", 0.0, mean),
        ("matryoshka_batchtopk", 0.0, mean),
        ("standard", 5.0, mean),
        ("topk", 0.0, None),
    ]
    for arch, l1, b_dec in cases:
        rows = {}
        start = "b_dec mean" if b_dec is not None else "b_dec zero"
        print(f"  {arch}, from {start}:")
        pair = run_pair(arch, args.k, l1, args.steps, args.dead_window, b_dec, train)
        for name, (sae, tps) in pair.items():
            m = reconstruction_metrics(sae, held_out)
            rows[name] = tps
            print(
                f"    {name:8s} {tps:7.0f} tokens/s"
                f" {tps * flop / 1e9 / peak:6.1%} of peak"
                f"  EV {m['explained_variance']:.4f}  L0 {m['l0']:6.1f}"
                f"  dead {m['dead_fraction']:.3f}  after {BATCH * args.steps} tokens"
            )
        print(f"    speed-up {rows['ours'] / rows['saelens']:.2f}x")
        sys.stdout.flush()


# -- data-parallel overhead -----------------------------------------------------------


REDUCE_SECONDS: list[float] = []


class TimedParallel(DataParallel):
    """DataParallel that times its gradient all-reduce (into REDUCE_SECONDS)."""

    def average_gradients(self, params: Any) -> None:
        t = time.perf_counter()
        super().average_gradients(params)
        REDUCE_SECONDS.append(time.perf_counter() - t)


def ddp_worker(args: argparse.Namespace) -> None:
    """Runs under torchrun: TopK+AuxK steps on this rank's slice of each global batch."""
    torch.set_flush_denormal(True)
    joined = join_from_environment("cpu")
    parallel = TimedParallel(joined.rank, joined.world_size, joined.local_rank, joined.device)
    train, _ = scaled_activations()
    cfg = TrainingConfig(
        d_in=D_IN,
        d_sae=D_SAE,
        k=args.k,
        lr=LR,
        batch_size=BATCH,
        total_tokens=BATCH * args.ddp_steps,
        dead_feature_window=args.dead_window,
        b_dec_init="zeros",
        seed=0,
        log_every_steps=10**9,
    )
    loop = SAETrainingLoop(cfg, ROOT / ".cache/bench/out/ddp", parallel)
    size = loop.local_batch_size
    step_seconds = []
    for n, batch in enumerate(itertools.islice(batches(train, 1), args.ddp_steps)):
        t = time.perf_counter()
        loop.step(batch[parallel.rank * size : (parallel.rank + 1) * size])
        if n:
            step_seconds.append(time.perf_counter() - t)
    if parallel.is_main:
        reduce = REDUCE_SECONDS[1:]
        result = {
            "step": statistics.median(step_seconds),
            "reduce": statistics.median(reduce) if joined.world_size > 1 else 0.0,
        }
        Path(args.ddp_out).write_text(json.dumps(result))
    leave()


def compare_ranks(args: argparse.Namespace) -> None:
    """1 process vs 2 gloo ranks on the same global batches, alternating rounds."""
    threads = os.cpu_count() or 2
    print(
        f"data parallel, TopK+AuxK, global batch {BATCH}, {args.ddp_steps} steps per round; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    results: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    out = ROOT / ".cache/bench/out/ddp.json"
    for _round, world in itertools.product(range(args.rounds), (1, 2)):
        env = os.environ | {"OMP_NUM_THREADS": str(max(threads // world, 1))}
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={world}",
            __file__,
            "--ddp-worker",
            "--ddp-out",
            str(out),
            "--ddp-steps",
            str(args.ddp_steps),
            "--k",
            str(args.k),
            "--dead-window",
            str(args.dead_window),
        ]
        subprocess.run(command, env=env, check=True)
        results[world].append(json.loads(out.read_text()))
    one = statistics.median(r["step"] for r in results[1])
    two = statistics.median(r["step"] for r in results[2])
    reduce = statistics.median(r["reduce"] for r in results[2])
    print(f"  1 process, {threads} threads      step {one * 1000:7.1f} ms")
    print(
        f"  2 ranks (gloo), {max(threads // 2, 1)} thread each  step {two * 1000:7.1f} ms, "
        f"of which gradient all-reduce {reduce * 1000:.1f} ms"
    )
    print(f"  overhead per step {(two - one) * 1000:+.1f} ms ({two / one - 1:+.1%})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--dead-window", type=int, default=4)
    parser.add_argument("--contexts", type=int, default=640)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ddp-steps", type=int, default=12)
    parser.add_argument("--skip-ddp", action="store_true")
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ddp-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ddp_worker:
        ddp_worker(args)
        return
    torch.set_flush_denormal(True)
    cache(args.contexts)
    compare_trainers(args)
    if not args.skip_ddp:
        compare_ranks(args)


if __name__ == "__main__":
    main()
