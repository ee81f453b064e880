"""Bench: the inference service's hot paths against the bare model work, in one run.

On the packaged SmolLM2-135M with a 4608-feature SAE at `blocks.6.hook_resid_post` (random
unless --sae names a SAELens folder), through the real app (in-process ASGI):
- `activation/all` on 64-token prompts at concurrency 1 and 8 (p50/p95 per request and the
  wall time of a burst of 8), next to one bare forward of one prompt, one bare padded
  forward of the same 8 prompts (to layer 6), and 8 requests served one at a time
  (Neuronpedia's global lock);
- the logit lens over every layer of one prompt, next to one bare forward of it;
- a burst of 8 mixed requests (lens, raw, activation/all) next to the bare work they need;
- a 32-token `steer/completion` with STEERED+DEFAULT (one batch of two), next to one plain
  Hugging Face `generate` of 32 tokens and to STEERED then DEFAULT one after the other.

    .venv/bin/python bench/inference/run.py [--rounds 5] [--sae PATH] [--threads N]
        [--only all|lens|mixed] [--device cpu|cuda]

`--only lens` also runs on CUDA (`--device cuda`); the other parts are CPU benchmarks.
"""

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
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


def synchronize(device: str) -> None:
    """Wait for the CUDA kernels queued so far: without it a timing ends when the work is
    queued, not done."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


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

            if args.only in ("all", "lens"):
                await bench_lens(client, app.state.engine, prompts[0], args.rounds)
            if args.only in ("all", "mixed"):
                await bench_mixed(client, app.state.engine, prompts, body, args.rounds)
            if args.only in ("lens", "mixed"):
                return
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


async def bench_lens(client: httpx.AsyncClient, engine: object, prompt: str, rounds: int) -> None:
    """The logit lens over every layer of a 64-token prompt vs one bare forward of it, with
    the bf16-candidate read-out (the default on a CPU with native bf16) and the float32 one
    (the only one on CUDA)."""
    from interpedia_inference.lens import cpu_bf16_is_native

    model = engine.model  # type: ignore[attr-defined]
    ids = torch.tensor([model.tokenize(prompt)], device=model.device)
    body = {"model": "smollm2-135m", "prompt": prompt, "top_n": 10, "stream": False}
    served = engine.lens_bf16  # type: ignore[attr-defined]

    def bare() -> float:
        synchronize(model.device)
        start = time.perf_counter()
        with torch.no_grad():
            model.hf_model(ids, use_cache=False)
        synchronize(model.device)
        return time.perf_counter() - start

    async def lens(bf16: bool) -> float:
        engine.lens_bf16 = bf16  # type: ignore[attr-defined]
        synchronize(model.device)
        start = time.perf_counter()
        r = await client.post("/v1/lens/prompt", json=body)
        assert r.status_code == 200, r.text
        engine.lens_bf16 = served  # type: ignore[attr-defined]
        return time.perf_counter() - start  # the answer's numbers came off the device

    read_outs = {"bf16 candidates": True, "float32 read-out": False}
    if not cpu_bf16_is_native(model.device):
        print(f"\n(no bf16 read-out on {model.device}: the lens reads out in float32 there)")
        del read_outs["bf16 candidates"]
    bare()
    await lens(True)
    bare_times: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in read_outs}
    for _ in range(rounds):
        bare_times.append(bare())
        for name, bf16 in read_outs.items():
            times[name].append(await lens(bf16))
    med = statistics.median
    print(f"\nlens/prompt, {ids.shape[1]} tokens, all {model.n_layers} layers, top 10")
    print(f"  bare forward (full logits)      {fmt(bare_times)}")
    for name, values in times.items():
        goal = "; goal <= 1.5" if name == next(iter(read_outs)) else ""
        print(
            f"  lens, {name:<25} {fmt(values)}  ({med(values) / med(bare_times):.2f}x bare{goal})"
        )


async def bench_mixed(
    client: httpx.AsyncClient,
    engine: object,
    prompts: list[str],
    all_body: Callable[[str], dict[str, object]],
    rounds: int,
) -> None:
    """8 concurrent requests of three kinds (2 lens over every layer, 3 raw at layer 6, 3
    activation/all at layer 6), each on its own 64-token prompt, against the bare work they
    need: one padded forward of the 6 raw/all prompts to layer 6, one padded full forward
    of the 2 lens prompts with every hidden state, and the lens read-out of those 2 prompts
    (norm, unembedding, top-10, softmax; the service's own `LensReadout` over the same
    chunks of positions, so bf16 where it serves bf16) called directly."""
    from interpedia_inference.lens import CHUNK_POSITIONS, LensReadout

    model = engine.model  # type: ignore[attr-defined]
    lens_prompts, raw_prompts, all_prompts = prompts[:2], prompts[2:5], prompts[5:8]
    requests = (
        [("/v1/lens/prompt", {"prompt": p, "top_n": 10, "stream": False}) for p in lens_prompts]
        + [("/v1/activation/raw", {"prompts": [p], "layers": [6]}) for p in raw_prompts]
        + [("/v1/activation/all", all_body(p)) for p in all_prompts]
    )

    async def one(path: str, payload: dict[str, object]) -> None:
        r = await client.post(path, json={"model": "smollm2-135m", **payload})
        assert r.status_code == 200, r.text

    short = torch.tensor([model.tokenize(p) for p in raw_prompts + all_prompts])
    long = torch.tensor([model.tokenize(p) for p in lens_prompts])
    readout = LensReadout(engine)  # type: ignore[arg-type]

    def bare() -> tuple[float, float]:
        """(forwards, forwards + lens read-out) seconds."""
        start = time.perf_counter()
        model.run_hooks(short, [HOOK])
        with torch.no_grad():
            out = model.hf_model(long, output_hidden_states=True, use_cache=False)
        forwards = time.perf_counter() - start
        layers = list(range(model.n_layers))
        for row in range(long.shape[0]):
            hidden = tuple(h[row : row + 1] for h in out.hidden_states)
            for first in range(0, long.shape[1], CHUNK_POSITIONS):  # as the service does
                chunk = slice(first, first + CHUNK_POSITIONS)
                readout.top(hidden, out.logits[row], layers, chunk, 10)
        return forwards, time.perf_counter() - start

    bare()
    await asyncio.gather(*(one(path, payload) for path, payload in requests))
    forwards, with_readout, burst = [], [], []
    for _ in range(rounds):
        f, w = bare()
        forwards.append(f)
        with_readout.append(w)
        start = time.perf_counter()
        await asyncio.gather(*(one(path, payload) for path, payload in requests))
        burst.append(time.perf_counter() - start)
    med = statistics.median
    print("\nmixed burst: 2 lens (30 layers) + 3 raw + 3 activation/all, 64-token prompts")
    kind = "bf16 candidates" if readout.fast else "float32"
    print(f"  bare forwards (padded, 2 batches)   {fmt(forwards)}")
    print(f"  + bare lens read-out ({kind}) {fmt(with_readout)}")
    print(
        f"  8 concurrent requests, burst wall   {fmt(burst)}  "
        f"({med(burst) / med(with_readout):.2f}x bare work; goal <= 1.3; "
        f"{med(burst) / med(forwards):.2f}x the forwards alone)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--sae", default=None, help="a SAELens folder (default: random 4608-feature SAE at layer 6)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (the app's device)")
    parser.add_argument("--only", choices=["all", "lens", "mixed"], default="all")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="interpedia-bench-inference-") as scratch:
        asyncio.run(bench(args, Path(scratch)))


if __name__ == "__main__":
    main()
