"""Bench: dashboards for every feature vs the bare forward-to-hook + SAE encode.

Same prompts, same run: (a) the baseline loop runs SmolLM2-135M to `blocks.6.hook_resid_post`
and encodes with the SAE, nothing else; (b) `compute_dashboards` does the whole job for
all features (one model pass, replay of the stored codes, logit lens, cosine neighbours,
Python results). The machine is shared, and other load only ever adds time, so (a) and (b)
alternate (a, b, a, b, a with --repeats 2) and the ratio is best (b) over best (a); every
run is printed, and (b)'s own phase times are logged. Goal: (b) ≤ 1.3 × (a).

    .venv/bin/python bench/dashboards/run.py [--prompts 768] [--repeats 2] [--sae PATH]

768 prompts is what `make demo` computes dashboards over. The logit lens and decoder
cosines depend on the weights only (about 2 s for 4608 features × 49k vocabulary), so the
ratio falls as the prompts grow; the phase times printed show both parts.

Without --sae it uses a TopK SAE (d_sae 4608, k 32) with random weights: the cost does
not depend on the weights, only on d_sae and L0.
"""

import argparse
import logging
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged model is local; never ask the hub

import torch

from interpedia_trainer.architectures import build_training_sae
from interpedia_trainer.corpus import tokenize_corpus
from interpedia_trainer.dashboards import DashboardOptions, compute_dashboards
from interpedia_trainer.model_runtime import load_hooked_model
from interpedia_trainer.pipeline import load_sae

ROOT = Path(__file__).resolve().parents[2]
HOOK = "blocks.6.hook_resid_post"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=768, help="the demo's size")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sae", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=2, help="runs of (b), between runs of (a)")
    args = parser.parse_args()
    # compute_dashboards logs its phase times (model pass, replay, examples, weights,
    # assemble) at INFO: show them, so the output says where the time beyond (a) goes.
    logging.basicConfig(format="  %(message)s")
    logging.getLogger("interpedia_trainer.dashboards").setLevel(logging.INFO)
    torch.set_flush_denormal(True)
    model = load_hooked_model()
    if args.sae is not None:
        sae = load_sae(args.sae)
    else:
        torch.manual_seed(0)
        sae = build_training_sae("topk", model.d_model, 4608, k=32).eval()
    tokens = tokenize_corpus(
        ROOT / ".cache/corpora/sotu", model.tokenizer, context_size=128, max_contexts=args.prompts
    )
    n_tok = tokens.numel()
    print(
        f"device cpu, {torch.get_num_threads()} threads, fp32; {tokens.shape[0]} prompts x "
        f"{tokens.shape[1]} tokens; d_sae {sae.W_dec.shape[0]}, hook {HOOK}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )

    def forward(batch: torch.Tensor) -> torch.Tensor:
        return model.forward_to_hook(batch, HOOK)

    def baseline() -> float:
        t = time.perf_counter()
        with torch.no_grad():
            for i in range(0, tokens.shape[0], args.batch_size):
                resid = forward(tokens[i : i + args.batch_size])
                sae.encode(resid.reshape(-1, resid.shape[-1]))
        return time.perf_counter() - t

    with torch.no_grad():  # warm-up at the timed batch shape
        sae.encode(forward(tokens[: args.batch_size]).reshape(-1, model.d_model))
    bases, totals = [baseline()], []
    for _ in range(max(1, args.repeats)):
        t = time.perf_counter()
        dashes = compute_dashboards(
            forward,
            sae,
            tokens,
            W_U=model.W_U,
            ignore_token_ids=model.special_token_ids,
            options=DashboardOptions(batch_size=args.batch_size),
        )
        totals.append(time.perf_counter() - t)
        bases.append(baseline())
    base, total = min(bases), min(totals)
    print(
        f"  forward-to-hook + encode   {base:7.2f} s  ({n_tok / base:6.0f} tokens/s; "
        f"best of {', '.join(f'{b:.2f}' for b in bases)} s)"
    )
    print(
        f"  dashboards, all features   {total:7.2f} s  ({n_tok / total:6.0f} tokens/s; "
        f"best of {', '.join(f'{b:.2f}' for b in totals)} s; "
        f"{len(dashes)} features, {sum(d.max_activation > 0 for d in dashes)} fired)"
    )
    print(f"  ratio                      {total / base:7.2f}x  (goal <= 1.3x)")


if __name__ == "__main__":
    main()
