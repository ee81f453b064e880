"""Bench: a graph made through the graph service vs circuit-tracer's bare `attribute` call.

Same transcoders, same prompt, same options, same run. By default fits a quick transcoder
set on the packaged SmolLM2-135M (d_transcoder 512, each feature firing on 1% of 16k SOTU
tokens); `--set trained` trains one with the trainer instead (`interpedia train
--architecture transcoder --layers all --activation topk --skip`, sized as the demo's set:
40k SOTU tokens, ~5 min on 2 quiet cores). Either is made once, then reused from
.cache/bench. The set is registered in a throwaway embedded Postgres, then the script
times, taking turns:

- bare: `attribute(ids, model, ...)` on a `ReplacementModel` loaded in this process, called
  from the main thread, and again from a thread of its own, as the worker calls it (torch
  runs differently there: on this machine under load, half the CPU time; see bench/README);
- service: POST /v1/graphs to the real graph service, polled until its job succeeded,
  the worker a separate process (queue, attribution, graph JSON, format check, storage).

The worker's first job (which loads the model) and a first bare call are warm-ups and are
not timed: the first trace of a model costs more than the next ones on both sides. Prints
the ratios of the medians (goal ≤ 1.1×) of wall time and of CPU time (this process's for
the bare call, the worker process's for the service: under load from other processes the
CPU time is the steadier figure), and for the fixed 8-token prompt the bare call's wall and
CPU time, its active features and the feature nodes traced.

Then the set's fidelity: the replacement model's (every MLP replaced by its transcoder)
top next token against the real model's on a few fixed demo prompts, circuit-tracer's
replacement and completeness scores (`compute_graph_scores`) of the example graph (the
8-token prompt's), and each layer's FVU on held-out SOTU tokens (the ones right after the
fit's). `--fidelity-only` skips the timing (no Postgres, no service) and traces once.
Runs in the graph service's environment (it re-runs itself there).

    .venv/bin/python bench/graph/run.py [--rounds 3] [--max-feature-nodes 256] [--fidelity-only]
        [--set quick|trained] [--train-tokens 8192] [--k 16]
"""

import importlib.util
import os
import sys

if importlib.util.find_spec("circuit_tracer") is None:  # the graph environment's python
    from interpedia_core.settings import CommonSettings

    PYTHON = str(CommonSettings().graph_bin / "python")
    os.execv(PYTHON, [PYTHON, __file__, *sys.argv[1:]])

import argparse
import asyncio
import resource
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged model is local; never ask the hub

import httpx
import psutil
import torch
from transformers import AutoConfig

from interpedia_db import migrate
from interpedia_db.connect import create_engine, create_sessionmaker
from interpedia_db.embedded import EmbeddedPostgres
from interpedia_db.transcoder_sets import register_transcoder_set
from interpedia_formats.transcoder_set import (
    CONFIG_NAME,
    layer_paths,
    read_set_config,
    write_transcoder_set,
)
from interpedia_graph import attribution, prompts, transcoder_sets
from interpedia_graph.replacement import load_replacement_model, load_tokenizer, model_folder
from interpedia_testing.graph import GraphService, graph_env
from interpedia_testing.net import free_port

ROOT = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m"
PROMPT = "The capital of France is Paris, and"  # 8 tokens
SET = "tc-bench"
TRAIN_CONTEXT = 128  # the trained set's context size
CORPUS = ROOT / ".cache/corpora/sotu"
ORACLE_FVUS = (0.1, 0.03, 0.01)  # the noise levels the fidelity check tries on the real MLPs
DEMO_PROMPTS = [  # the fidelity check's: short prompts whose next token is clear
    PROMPT,
    "The capital of France is",
    "The Eiffel Tower is located in the city of",
    "Mr. Speaker, the state of our Union is",
    "One, two, three, four,",
    "The opposite of hot is",
    "The United States of",
    "She opened the door and walked into the",
]


def fitted_set(d_transcoder: int, tokens: int) -> Path:
    """The quick set's folder (fitted once and kept in the bench's cache)."""
    from transformers import AutoModelForCausalLM

    folder = ROOT / ".cache" / "bench" / f"transcoders-{d_transcoder}-{tokens}"
    if not (folder / CONFIG_NAME).exists():
        hf_model = AutoModelForCausalLM.from_pretrained(model_folder(MODEL))
        t = time.perf_counter()
        batches = transcoder_sets.calibration_batches(
            load_tokenizer(MODEL), CORPUS, tokens, context=64
        )
        mlp_in, mlp_out = transcoder_sets.collect_mlp_pairs(hf_model.eval(), batches)
        layers = transcoder_sets.fit_quick_transcoders(
            mlp_in, mlp_out, d_transcoder=d_transcoder, density=0.01
        )
        write_transcoder_set(folder, layers, scan=SET, model_name=MODEL)
        print(f"fitted the quick set in {time.perf_counter() - t:.1f} s", flush=True)
    return folder


def trained_set(args: argparse.Namespace) -> Path:
    """A set the trainer trains (TopK with a closed-form skip, every layer), once and kept.

    The trainer lives in the platform's environment, so it runs as `interpedia train` there,
    the way a person makes a set; its output (throughput, per-layer held-out FVU) is shown.
    """
    tokens, d_sae, k, batch = args.train_tokens, args.d_transcoder, args.k, args.train_batch_size
    name = f"trained-topk-skip-{d_sae}-k{k}-{tokens}-b{batch}-lr{args.lr:g}"
    folder = ROOT / ".cache" / "bench" / name
    if (folder / CONFIG_NAME).exists():
        return folder
    interpedia = ROOT / ".venv" / "bin" / "interpedia"
    command = [str(interpedia), "train", "--architecture", "transcoder", "--layers", "all"]
    command += ["--activation", "topk", "--skip", "--d-sae", str(d_sae), "--k", str(k)]
    command += ["--batch-size", str(batch), "--lr", str(args.lr), "--total-tokens", str(tokens)]
    command += ["--context-size", str(TRAIN_CONTEXT), "--corpus", str(CORPUS)]
    print(f"training the set: {' '.join(command[1:])}", flush=True)
    t = time.perf_counter()
    subprocess.run([*command, "--out", str(folder)], check=True, env=os.environ)
    print(f"trained the set in {time.perf_counter() - t:.1f} s", flush=True)
    return folder


async def register(url: str, folder: Path, n_layers: int, d_model: int, d_tc: int) -> None:
    engine = create_engine(url)
    async with create_sessionmaker(engine).begin() as session:
        await register_transcoder_set(
            session,
            model_id=MODEL,
            model_display_name="SmolLM2 135M Instruct",
            name=SET,
            folder=folder,
            layers=list(range(n_layers)),
            n_model_layers=n_layers,
            d_model=d_model,
            d_transcoder=d_tc,
            description="bench",
        )
    await engine.dispose()


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def through_service(client: httpx.Client, slug: str, options: dict) -> tuple[float, dict]:
    start = time.perf_counter()
    job = client.post(
        "/v1/graphs", json={"model_id": MODEL, "prompt": PROMPT, "slug": slug, **options}
    )
    job.raise_for_status()
    job_id = job.json()["job_id"]
    while True:
        seen = client.get(f"/v1/jobs/{job_id}").json()
        if seen["status"] == "succeeded":
            return time.perf_counter() - start, seen
        if seen["status"] not in ("todo", "doing"):
            raise RuntimeError(f"the graph job ended {seen['status']}: {seen['message']}")
        time.sleep(0.05)


MlpReplacement = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def top_tokens(hf_model: Any, tokenizer: Any, replace: MlpReplacement | None) -> list[str]:
    """The model's top next token on each demo prompt; with `replace`, the replacement
    model's: every layer's MLP output becomes `replace(layer, mlp_in, mlp_out)` (attention
    unchanged), at every position but the special token's, which attribution leaves out too
    and the fit never saw."""

    def hook_of(layer: int, replace: MlpReplacement) -> Any:
        def hook(module: Any, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> Any:
            # The MLP's one input is its pre-MLP norm's output: the transcoder's hook_in.
            replaced = replace(layer, inputs[0][:, 1:], out[:, 1:])
            return torch.cat([out[:, :1], replaced.to(out.dtype)], dim=1)  # [1, n_tokens, d]

        return hook

    handles = []
    if replace is not None:
        n_layers = hf_model.config.num_hidden_layers
        for layer, (_, mlp) in enumerate(transcoder_sets.mlp_modules(hf_model, n_layers)):
            handles.append(mlp.register_forward_hook(hook_of(layer, replace)))
    try:
        return [
            tokenizer.decode([int(hf_model(ids[None]).logits[0, -1].argmax())])
            for ids in (prompts.prompt_ids(tokenizer, text) for text in DEMO_PROMPTS)
        ]
    finally:
        for handle in handles:
            handle.remove()


def agreeing(real: list[str], replaced: list[str]) -> int:
    return sum(a == b for a, b in zip(real, replaced, strict=True))


def print_noise_agreement(
    hf_model: Any, tokenizer: Any, real: list[str], mlp_out: list[torch.Tensor]
) -> None:
    """What the goal asks of any set: the top token of the real MLPs, each output perturbed
    by Gaussian noise of a given FVU (per dimension, scaled to that MLP's held-out spread)."""
    spreads = [out.std(0) for out in mlp_out]  # [d_model] per layer
    generator = torch.Generator().manual_seed(0)
    for target in ORACLE_FVUS:

        def noisy(layer: int, _x: torch.Tensor, out: torch.Tensor, fvu: float = target) -> Any:
            noise = torch.randn(out.shape, generator=generator) * spreads[layer] * fvu**0.5
            return out + noise

        replaced = top_tokens(hf_model, tokenizer, noisy)
        print(
            f"real MLPs + noise at FVU {target} in every layer: top next token agrees on "
            f"{agreeing(real, replaced)} of {len(DEMO_PROMPTS)} "
            f"({', '.join(map(repr, replaced))})"
        )


def tail_rows(tokenizer: Any, n_tokens: int, context: int = 64) -> torch.Tensor:
    """[n_rows, context] rows of the corpus's last documents, each led by the special token.

    The quick set is fitted on the corpus's start; the trainer reads contexts spread over
    all of it but its last 8 (its held-out), which are these rows' last 1,016 tokens: of
    the 4,096 here about 1 in 50 contexts' worth may be trained on.
    """
    files = sorted(CORPUS.glob("*.txt"))
    ids: list[int] = []
    while files and len(ids) < n_tokens:
        text = files.pop().read_text(errors="replace")
        ids = tokenizer(text, add_special_tokens=False).input_ids + ids
    ids = ids[-n_tokens:]
    body = context - 1
    return torch.stack(
        [
            prompts.prompt_ids(tokenizer, ids[i : i + body])
            for i in range(0, len(ids) - body + 1, body)
        ]
    )


@torch.no_grad()
def fidelity(graph: Any, folder: Path, args: argparse.Namespace) -> None:
    """Print how faithful the replacement model is: top next token on the demo prompts,
    circuit-tracer's replacement and completeness scores of the example graph, and each
    layer's FVU on the corpus's last tokens (today's speeches; see `tail_rows`)."""
    from circuit_tracer.graph import compute_graph_scores
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    replacement, completeness = compute_graph_scores(graph)
    print(
        f"example graph ({PROMPT!r}): replacement score {replacement:.3f}, "
        f"completeness score {completeness:.3f}",
        flush=True,
    )
    tokenizer = load_tokenizer(MODEL)
    hf_model = AutoModelForCausalLM.from_pretrained(model_folder(MODEL)).eval()
    transcoders = transcoder_sets.load_transcoder_set(folder)  # plain modules, not nnsight's
    real = top_tokens(hf_model, tokenizer, None)
    replaced = top_tokens(hf_model, tokenizer, lambda layer, x, _: transcoders[layer](x))
    for text, answer, replacement in zip(DEMO_PROMPTS, real, replaced, strict=True):
        print(f"  {text!r}: real {answer!r}, replacement {replacement!r}")
    agree = agreeing(real, replaced)
    print(f"top next token agrees on {agree} of {len(DEMO_PROMPTS)} demo prompts", flush=True)
    rows = tail_rows(tokenizer, args.heldout_tokens)  # [n_rows, 64]
    mlp_in, mlp_out = transcoder_sets.collect_mlp_pairs(hf_model, rows.split(16))
    fvus = [
        transcoder_sets.fraction_of_variance_unexplained(
            load_file(str(path)), mlp_in[layer], mlp_out[layer]
        )
        for layer, path in sorted(layer_paths(folder, read_set_config(folder)).items())
    ]
    print(
        f"held-out FVU ({mlp_in[0].shape[0]} tokens): median {statistics.median(fvus):.3f}, "
        f"min {min(fvus):.3f}, max {max(fvus):.3f}; by layer "
        + " ".join(f"{fvu:.2f}" for fvu in fvus)
    )
    print_noise_agreement(hf_model, tokenizer, real, mlp_out)


def time_service_vs_bare(
    model: Any,
    ids: torch.Tensor,
    options: attribution.AttributionOptions,
    folder: Path,
    n_layers: int,
    d_model: int,
    args: argparse.Namespace,
) -> Any:
    """The timing rounds (see the module doc); returns the bare call's last graph."""
    root = Path(tempfile.mkdtemp(prefix="interpedia-bench-"))
    server = EmbeddedPostgres(root / "postgres", free_port())
    service = None
    try:
        server.ensure_running()
        migrate.upgrade(server.url)
        asyncio.run(register(server.url, folder, n_layers, d_model, args.d_transcoder))
        service = GraphService(Path(sys.executable).parent, graph_env(server.url, root)).start()
        body = {"max_feature_nodes": args.max_feature_nodes, "batch_size": args.batch_size}
        with httpx.Client(base_url=service.url, timeout=120) as client:
            t = time.perf_counter()
            through_service(client, "warm-up", body)
            print(f"service warm-up (the worker loads the model): {time.perf_counter() - t:.1f} s")
            t = time.perf_counter()
            attribution.trace(model, ids, options, lambda *a: None)
            print(f"bare warm-up (first trace of the model): {time.perf_counter() - t:.1f} s")
            worker = psutil.Process(service.workers[0].pid)
            bare, cpu, threaded, threaded_cpu, served, served_cpu = [], [], [], [], [], []

            def trace_bare() -> Any:
                return attribution.trace(model, ids, options, lambda *a: None)

            for round_ in range(args.rounds):
                t, c = time.perf_counter(), time.process_time()
                graph = trace_bare()
                bare.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
                t, c = time.perf_counter(), time.process_time()
                with ThreadPoolExecutor(1) as pool:
                    pool.submit(trace_bare).result()
                threaded.append(time.perf_counter() - t)
                threaded_cpu.append(time.process_time() - c)
                c = cpu_seconds(worker)
                seconds, job = through_service(client, f"round-{round_}", body)
                served.append(seconds)
                served_cpu.append(cpu_seconds(worker) - c)
                print(
                    f"round {round_}: bare {bare[-1]:.1f} s (cpu {cpu[-1]:.1f} s), bare in a "
                    f"thread {threaded[-1]:.1f} s (cpu {threaded_cpu[-1]:.1f} s), service "
                    f"{seconds:.1f} s (worker cpu {served_cpu[-1]:.1f} s), load average "
                    f"{os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        active = int(graph.active_features.shape[0])
        print(
            f"graph: {active} active features, {len(graph.selected_features)} traced, "
            f"{len(graph.logit_targets)} logits; stored JSON {job['graph']['n_nodes']} nodes, "
            f"{job['graph']['n_links']} links after pruning"
        )
        for label, wall, seconds in (
            ("bare attribute, main thread", bare, cpu),
            ("bare attribute, own thread", threaded, threaded_cpu),
        ):
            print(
                f"{label}: median {statistics.median(wall):.1f} s wall, "
                f"{statistics.median(seconds):.1f} s CPU"
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process {peak:.0f} MB")
        for what, ours, theirs in (
            ("wall, vs bare in a thread", served, threaded),
            ("CPU, vs bare in a thread", served_cpu, threaded_cpu),
            ("wall, vs bare in the main thread", served, bare),
        ):
            ratio = statistics.median(ours) / statistics.median(theirs)
            print(
                f"service / bare, {what}: {ratio:.3f}x ({statistics.median(ours):.1f} / "
                f"{statistics.median(theirs):.1f} s; goal ≤ 1.1x)"
            )
    finally:
        if service is not None:
            service.stop()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-feature-nodes", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--set",
        choices=("quick", "trained"),
        default="quick",
        help="quick: random encoders, fitted decoders (minutes); trained: the trainer's TopK "
        "transcoders with a closed-form skip, sized as the demo's (~5 min on 2 quiet cores)",
    )
    parser.add_argument("--d-transcoder", type=int, default=512)
    parser.add_argument("--calibration-tokens", type=int, default=16_384, help="quick set")
    # The trained set's defaults are the demo's transcoders (interpedia_platform.demo).
    parser.add_argument("--train-tokens", type=int, default=40_000, help="trained set")
    parser.add_argument("--train-batch-size", type=int, default=256, help="trained set")
    parser.add_argument("--k", type=int, default=16, help="trained set: features per token")
    parser.add_argument("--lr", type=float, default=1e-2, help="trained set")
    parser.add_argument("--heldout-tokens", type=int, default=4_096)
    parser.add_argument(
        "--fidelity-only",
        action="store_true",
        help="skip the timing rounds: trace the example graph once and print the fidelity",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    torch.set_flush_denormal(True)
    print(
        f"cpu cores: {os.cpu_count()}, torch threads {torch.get_num_threads()}, load average "
        f"{os.getloadavg()[0]:.1f}; torch {torch.__version__}, device cpu, float32",
        flush=True,
    )
    if args.set == "quick":
        folder = fitted_set(args.d_transcoder, args.calibration_tokens)
    else:
        folder = trained_set(args)
    config = AutoConfig.from_pretrained(model_folder(MODEL))
    n_layers, d_model = config.num_hidden_layers, config.hidden_size
    options = attribution.AttributionOptions(
        max_feature_nodes=args.max_feature_nodes, batch_size=args.batch_size
    )
    tokenizer = load_tokenizer(MODEL)
    ids = prompts.prompt_ids(tokenizer, PROMPT)
    print(
        f"prompt {PROMPT!r}: {len(ids) - 1} tokens (+ the tracer's special token); set "
        f"{n_layers} layers × {args.d_transcoder} features ({args.set}); "
        f"{args.max_feature_nodes} feature nodes, batch {args.batch_size}",
        flush=True,
    )
    model = load_replacement_model(MODEL, folder, "cpu")

    if args.fidelity_only:
        graph = attribution.trace(model, ids, options, lambda *a: None)
    else:
        graph = time_service_vs_bare(model, ids, options, folder, n_layers, d_model, args)
    fidelity(graph, folder, args)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """Unwind through `finally`, so the service and Postgres stop when `timeout` ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    main()
