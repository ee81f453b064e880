"""Bench: the inference service's hot paths against the bare model work, in one run.

On the packaged SmolLM2-135M with a 4608-feature SAE at `blocks.6.hook_resid_post` (random
unless --sae names a SAELens folder), through the real app (in-process ASGI):
- `activation/all` on 64-token prompts at concurrency 1 and 8 (p50/p95 per request and the
  wall time of a burst of 8), next to one bare forward of one prompt, one bare padded
  forward of the same 8 prompts (to layer 6), and 8 requests served one at a time
  (Neuronpedia's global lock);
- a 32-token `steer/completion` with STEERED+DEFAULT (one batch of two), next to one plain
  Hugging Face `generate` of 32 tokens and to STEERED then DEFAULT one after the other.

    .venv/bin/python bench/inference/run.py [--rounds 5] [--sae PATH] [--threads N]
"""

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged model is local; never ask the hub

import httpx
import torch

from interpedia_inference.app import create_app
from interpedia_inference.settings import InferenceSettings
from interpedia_runtime.saes import save_random_sae

HOOK = "blocks.6.hook_resid_post"
TEXT = (
    "The State of the Union address is delivered each year by the President to a joint "
    "session of Congress. It reviews the condition of the nation, proposes a legislative "
    "agenda and sets out priorities for the year ahead, from the economy and national "
    "security to health care, education and the environment. "
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fmt(values: list[float]) -> str:
    return f"p50 {pct(values, 0.5) * 1000:7.1f} ms  p95 {pct(values, 0.95) * 1000:7.1f} ms"


def prompts_of(tokenizer: object, n: int, n_tokens: int) -> list[str]:
    """n distinct prompts of exactly n_tokens tokens (BOS included)."""
    words = (TEXT * 4).split()
    out = []
    for i in range(n):
        rotated = " ".join(words[i * 3 :] + words[: i * 3])
        ids = tokenizer(rotated, add_special_tokens=False)["input_ids"][: n_tokens - 1]
        out.append(tokenizer.decode(ids))
    return out


async def bench(args: argparse.Namespace, scratch: Path) -> None:
    sae_dir = args.sae
    if sae_dir is None:
        sae_dir = str(save_random_sae(scratch / "sae", d_in=576, d_sae=4608, hook_name=HOOK))
    settings = InferenceSettings(
        model_id="smollm2-135m",
        sae_sources=[sae_dir],
        sae_source_set="res-bench",
        device=args.device,
        torch_threads=args.threads,
    )
    if args.threads > 0:
        torch.set_num_threads(args.threads)  # the baselines run in this thread: same setting
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        while not app.state.ready:
            if getattr(app.state, "load_error", None):
                raise SystemExit(app.state.load_error)
            await asyncio.sleep(0.1)
        engine = app.state.engine
        model = engine.model
        source = engine.registry.sources_in_set("res-bench")[0]
        sae = await engine.sae(source)
        prompts = prompts_of(model.tokenizer, 8, 64)
        token_lists = [model.tokenize(p) for p in prompts]
        print(
            f"device {model.device}  dtype {model.dtype}  torch threads {torch.get_num_threads()}  "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        print(
            f"model {model.model_id} ({model.n_layers} layers, d_model {model.d_model}); "
            f"SAE {source} {sae.hook_name} d_in {sae.d_in} d_sae {sae.d_sae}"
        )
        print(f"prompts: 8 x {next(len(t) for t in token_lists)} tokens; rounds {args.rounds}")

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=600
        ) as client:

            def body(p: str) -> dict[str, object]:
                return {
                    "prompt": p,
                    "model": "smollm2-135m",
                    "source_set": "res-bench",
                    "selected_sources": [],
                    "sort_by_token_indexes": [],
                    "ignore_bos": True,
                    "num_results": 25,
                }

            async def one(p: str) -> float:
                start = time.perf_counter()
                r = await client.post("/v1/activation/all", json=body(p))
                assert r.status_code == 200, r.text
                return time.perf_counter() - start

            # warm up
            await one(prompts[0])
            model.run_hooks(torch.tensor([token_lists[0]]), [HOOK])

            bare_single, bare_batch, c1, c8, c8_wall, serial_wall = [], [], [], [], [], []
            batch = torch.tensor(token_lists)
            for _ in range(args.rounds):
                t = time.perf_counter()
                model.run_hooks(batch[:1], [HOOK])
                bare_single.append(time.perf_counter() - t)
                t = time.perf_counter()
                model.run_hooks(batch, [HOOK])
                bare_batch.append(time.perf_counter() - t)
                for p in prompts[:2]:
                    c1.append(await one(p))
                t = time.perf_counter()
                c8.extend(await asyncio.gather(*(one(p) for p in prompts)))
                c8_wall.append(time.perf_counter() - t)
                t = time.perf_counter()
                for p in prompts:
                    await one(p)
                serial_wall.append(time.perf_counter() - t)

            med = statistics.median
            print("\nactivation/all, 64-token prompts, forward stops after layer 6")
            print(f"  bare forward, 1 prompt          {fmt(bare_single)}")
            print(
                f"  bare padded forward, 8 prompts  {fmt(bare_batch)}  "
                f"({med(bare_batch) / med(bare_single):.2f}x one prompt)"
            )
            print(
                f"  concurrency 1, per request      {fmt(c1)}  "
                f"({med(c1) / med(bare_single):.2f}x bare 1-prompt forward)"
            )
            print(f"  concurrency 8, per request      {fmt(c8)}")
            print(
                f"  concurrency 8, burst wall       {fmt(c8_wall)}  "
                f"({med(c8_wall) / med(bare_batch):.2f}x bare 8-prompt forward; goal <= 1.25)"
            )
            print(
                f"  one at a time, 8 requests       {fmt(serial_wall)}  "
                f"({med(serial_wall) / med(bare_batch):.2f}x bare 8-prompt forward)"
            )

            # -- steering ---------------------------------------------------------
            prompt = "Once upon a time, in a small village by the sea,"
            steer_body = {
                "prompt": prompt,
                "model": "smollm2-135m",
                "n_completion_tokens": 32,
                "features": [
                    {"model": "smollm2-135m", "source": source, "index": 7, "strength": 4}
                ],
                "temperature": 0.7,
                "seed": 1,
                "strength_multiplier": 1,
                "freq_penalty": 0,
                "steer_method": "SIMPLE_ADDITIVE",
                "normalize_steering": False,
            }

            async def steer(types: list[str]) -> float:
                start = time.perf_counter()
                r = await client.post("/v1/steer/completion", json={**steer_body, "types": types})
                assert r.status_code == 200, r.text
                return time.perf_counter() - start

            ids = torch.tensor([model.tokenize(prompt)])

            def plain_generate() -> float:
                start = time.perf_counter()
                with torch.no_grad():
                    model.hf_model.generate(
                        ids,
                        attention_mask=torch.ones_like(ids),
                        max_new_tokens=32,
                        min_new_tokens=32,
                        do_sample=False,
                        pad_token_id=model.tokenizer.pad_token_id,
                    )
                return time.perf_counter() - start

            plain_generate()
            await steer(["STEERED", "DEFAULT"])
            plain, both, serial = [], [], []
            for _ in range(max(2, args.rounds // 2)):
                plain.append(plain_generate())
                both.append(await steer(["STEERED", "DEFAULT"]))
                serial.append(await steer(["STEERED"]) + await steer(["DEFAULT"]))
            print("\nsteer/completion, 32 tokens")
            print(f"  plain HF generate, 1 sequence   {fmt(plain)}")
            print(
                f"  STEERED+DEFAULT (batch of 2)    {fmt(both)}  "
                f"({med(both) / med(plain):.2f}x plain generate; goal <= 1.25)"
            )
            print(
                f"  STEERED then DEFAULT            {fmt(serial)}  "
                f"({med(serial) / med(plain):.2f}x plain generate)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--sae", default=None, help="a SAELens folder (default: random 4608-feature SAE at layer 6)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="interpedia-bench-inference-") as scratch:
        asyncio.run(bench(args, Path(scratch)))


if __name__ == "__main__":
    main()
