"""Bench: training a transcoder set for every layer of the packaged model in one run.

Trains one TopK transcoder per layer of SmolLM2-135M (all 30) on SOTU text, every batch of
contexts run through the model ONCE for all layers, and prints the throughput (tokens per
second for all layers together: each token trains every layer), the share of the time
spent in the model's forward (collecting the (MLP input, MLP output) pairs), and each
layer's held-out fraction of MLP-output variance unexplained (FVU), L0 and dead fraction.
Runs in the platform's environment (the trainer's):

    .venv/bin/python bench/graph/transcoders.py [--d-sae 256] [--k 16] [--tokens 4096]
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from interpedia_trainer.model_runtime import load_hooked_model
from interpedia_trainer.training import TrainingConfig
from interpedia_trainer.transcoders import train_transcoder_set

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--d-sae", type=int, default=256)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--activation", default="topk")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    print(
        f"cpu cores: {os.cpu_count()}, torch threads {torch.get_num_threads()}, load average "
        f"{os.getloadavg()[0]:.1f}; torch {torch.__version__}, device cpu, float32",
        flush=True,
    )
    model = load_hooked_model()
    base = TrainingConfig(
        d_in=model.d_model,
        d_sae=args.d_sae,
        k=args.k,
        batch_size=args.batch_size,
        total_tokens=args.tokens,
        context_size=128,
        lr=3e-3,
        log_every_steps=1000,
    )
    layers = list(range(model.n_layers))
    print(
        f"{len(layers)} layers × {args.d_sae} features ({args.activation}, k {args.k}), "
        f"batch {args.batch_size}, {args.tokens} tokens",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        started, cpu_started = time.perf_counter(), time.process_time()
        result = train_transcoder_set(
            base,
            model,
            ROOT / ".cache" / "corpora" / "sotu",
            Path(tmp) / "tc-bench",
            layers=layers,
            activation=args.activation,
            max_contexts=args.tokens // 127 + 16,
        )
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    print(
        f"trained {result.n_tokens} tokens × {len(layers)} layers in {result.seconds:.1f} s "
        f"({wall:.1f} s wall, {cpu:.1f} s CPU with the held-out pass and saving; "
        f"load average {os.getloadavg()[0]:.1f} at the end): "
        f"{result.tokens_per_second:.0f} tokens/s for all layers, "
        f"{result.forward_share:.0%} of the training time in the model's forward"
    )
    fvus = [m["fvu"] for m in result.per_layer.values()]
    print(
        f"held-out FVU: median {statistics.median(fvus):.3f}, "
        f"min {min(fvus):.3f}, max {max(fvus):.3f}"
    )
    for layer, metrics in result.per_layer.items():
        print(
            f"  layer {layer:2d}: fvu {metrics['fvu']:.3f}  l0 {metrics['l0']:6.1f}  "
            f"dead {metrics['dead_fraction']:.3f}"
        )


if __name__ == "__main__":
    main()
