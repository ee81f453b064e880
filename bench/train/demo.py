"""Bench: the demo SAE's quality on held-out text, today's start against the defaults.

The demo (`make demo`) trains a TopK SAE (d_sae 4608, k 32, lr 2e-3, inputs scaled to
norm sqrt(d_in), batch 4096, 800,000 tokens) on SmolLM2-135M `blocks.6.hook_resid_post`
over the SOTU corpus. This script records that run's activation stream once, exactly as
`interpedia train` draws it (the corpus's contexts in order, the last 8 held out, the
shuffle buffer seeded 42), in chunks under .cache/bench/demo-L6; a stopped recording
continues the way a resumed `interpedia train` does (at a context boundary). Then it
trains each configuration on the same batches and reports, for the inference SAE:

- explained variance, L0 and dead fraction (share of the 4608 features that never fire)
  on the demo's own held-out tokens (its 8 held-out contexts, 1,016 tokens: what the run
  tracker shows as eval/*) and on 64 more contexts no run of this length trains on
  (8,128 tokens): a feature that fires once in 10,000 tokens looks dead on 1,016;
- tokens/s of the training steps.

Configurations: `before` is the demo as it was (no AuxK, decoder bias at zero); `mean`
starts the decoder bias at the mean input only; `demo` is what the demo runs now (the
trainer's defaults plus the demo's `--dead-feature-window`).

    .venv/bin/python bench/train/demo.py [--tokens 800000] [--configs before,mean,demo]
        [--dead-window 10] [--threads N] [--record-only]
"""

import argparse
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged model is local; never ask the hub

import torch

from interpedia_trainer.activations import hook_activations, resume_context, stream_activations
from interpedia_trainer.corpus import tokenize_corpus
from interpedia_trainer.metrics import reconstruction_metrics
from interpedia_trainer.model_runtime import load_hooked_model
from interpedia_trainer.training import SAETrainingLoop, TrainingConfig

ROOT = Path(__file__).resolve().parents[2]
STREAM = ROOT / ".cache/bench/demo-L6"
HOOK, CONTEXT, BATCH, SEED = "blocks.6.hook_resid_post", 128, 4096, 42
N_EVAL, N_UNSEEN = 8, 64  # the pipeline's held-out contexts; more never-trained ones
CHUNK = 5  # batches per file
STREAM_META = {"hook": HOOK, "context": CONTEXT, "batch": BATCH, "seed": SEED, "n_eval": N_EVAL}


def _chunk(i: int) -> Path:
    return STREAM / f"chunk_{i:03d}.pt"


def record(n_batches: int) -> None:
    """Write the demo's first `n_batches` batches and the held-out sets, if not there yet."""
    STREAM.mkdir(parents=True, exist_ok=True)
    meta = STREAM / "stream.json"
    if meta.exists() and json.loads(meta.read_text()) != STREAM_META:
        raise SystemExit(f"{STREAM} holds another stream; delete it")
    meta.write_text(json.dumps(STREAM_META))
    n_chunks = -(-n_batches // CHUNK)
    done = next((i for i in range(n_chunks) if not _chunk(i).exists()), n_chunks)
    held = STREAM / "held_out.pt"
    if done == n_chunks and held.exists():
        return
    model = load_hooked_model("smollm2-135m")
    contexts = tokenize_corpus(
        ROOT / ".cache/corpora/sotu", model.tokenizer, context_size=CONTEXT, prepend_bos=True
    )
    train_ctx = contexts[:-N_EVAL]
    if not held.exists():
        sets = {"demo": contexts[-N_EVAL:], "unseen": contexts[-N_EVAL - N_UNSEEN : -N_EVAL]}
        acts = {
            k: torch.cat(list(hook_activations(model, HOOK, c, 8, True))) for k, c in sets.items()
        }
        torch.save(acts, held)
    if done == n_chunks:
        return
    stream = stream_activations(
        model,
        HOOK,
        train_ctx,
        batch_size=BATCH,
        model_batch_size=8,
        seed=SEED,
        start_context=resume_context(train_ctx, model.special_token_ids, done * CHUNK * BATCH),
    )
    started = time.perf_counter()
    for i in range(done, n_chunks):
        chunk = torch.stack([next(stream) for _ in range(CHUNK)])
        torch.save(chunk, _chunk(i).with_suffix(".tmp"))
        _chunk(i).with_suffix(".tmp").rename(_chunk(i))
        print(
            f"recorded chunk {i + 1}/{n_chunks} ({time.perf_counter() - started:.0f} s)", flush=True
        )


def replay(n_batches: int) -> Iterator[torch.Tensor]:
    """The first `n_batches` recorded batches, in order."""
    for i in range(-(-n_batches // CHUNK)):
        yield from torch.load(_chunk(i))[: n_batches - i * CHUNK]


CONFIGS = {
    "before": {"aux_loss_coefficient": 0.0, "b_dec_init": "zeros"},
    "mean": {"aux_loss_coefficient": 0.0},
    "demo": {},
}


def train(name: str, tokens: int, dead_window: int) -> dict[str, float]:
    cfg = TrainingConfig(
        d_in=576,
        d_sae=4608,
        architecture="topk",
        k=32,
        lr=2e-3,
        batch_size=BATCH,
        total_tokens=tokens,
        normalize_activations="expected_average_only_in",
        dead_feature_window=dead_window,
        seed=SEED,
        **CONFIGS[name],  # type: ignore[arg-type]
    )
    loop = SAETrainingLoop(cfg, ROOT / ".cache/bench/demo-runs" / name)
    batches = replay(cfg.n_batches_for_norm_estimate + cfg.total_steps)
    loop.estimate_input_statistics(batches)  # as `run` does: it trains on the batches after
    times = []
    for _ in range(cfg.total_steps):
        batch = next(batches)
        t = time.perf_counter()
        metrics = loop.step(batch)
        times.append(time.perf_counter() - t)
    sae = loop.inference_sae()
    held = torch.load(STREAM / "held_out.pt")
    out = {
        "tokens/s": BATCH / sorted(times)[len(times) // 2],
        "train_ev": metrics["explained_variance"],
    }
    for key, acts in held.items():
        for metric, value in reconstruction_metrics(sae, acts).items():
            out[f"{key}/{metric}"] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=800_000)
    parser.add_argument("--configs", default="before,mean,demo")
    parser.add_argument("--dead-window", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: its default)")
    parser.add_argument("--record-only", action="store_true")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average at start {os.getloadavg()[0]:.1f}; {torch.get_num_threads()} threads")
    n_batches = args.tokens // BATCH + TrainingConfig.n_batches_for_norm_estimate
    record(n_batches)
    if args.record_only:
        return
    for name in args.configs.split(","):
        r = train(name, args.tokens, args.dead_window)
        print(
            f"{name:7s} {r['tokens/s']:7.0f} tokens/s  train EV {r['train_ev']:.3f}  "
            + "  ".join(
                f"{key}: EV {r[f'{key}/explained_variance']:.3f} L0 {r[f'{key}/l0']:.1f} "
                f"dead {r[f'{key}/dead_fraction']:.1%}"
                for key in ("demo", "unseen")
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
