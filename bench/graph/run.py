"""Bench: a graph made through the graph service vs circuit-tracer's bare `attribute` call.

Same transcoders, same prompt, same options, same run. Fits a quick transcoder set on the
packaged SmolLM2-135M (d_transcoder 512, each feature firing on 1% of 16k SOTU tokens;
fitted once, then reused from .cache/bench), registers it in a throwaway embedded
Postgres, then times, taking turns round by round:

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
CPU time, its active features and the feature nodes traced. Runs in the graph service's
environment (it re-runs itself there).

    .venv/bin/python bench/graph/run.py [--rounds 3] [--max-feature-nodes 256]
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
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged model is local; never ask the hub

import httpx
import psutil
import torch

from interpedia_db import migrate
from interpedia_db.connect import create_engine, create_sessionmaker
from interpedia_db.embedded import EmbeddedPostgres
from interpedia_db.transcoder_sets import register_transcoder_set
from interpedia_formats.transcoder_set import CONFIG_NAME, write_transcoder_set
from interpedia_graph import attribution, prompts, transcoder_sets
from interpedia_graph.replacement import load_replacement_model, load_tokenizer, model_folder
from interpedia_testing.graph import GraphService, graph_env
from interpedia_testing.net import free_port

ROOT = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m"
PROMPT = "The capital of France is Paris, and"  # 8 tokens
SET = "tc-bench"


def fitted_set(d_transcoder: int, tokens: int) -> tuple[Path, int, int]:
    """The quick set's folder (fitted once and kept), its layers and d_model."""
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = ROOT / ".cache" / "bench" / f"transcoders-{d_transcoder}-{tokens}"
    config = AutoConfig.from_pretrained(model_folder(MODEL))
    if not (folder / CONFIG_NAME).exists():
        hf_model = AutoModelForCausalLM.from_pretrained(model_folder(MODEL))
        t = time.perf_counter()
        batches = transcoder_sets.calibration_batches(
            load_tokenizer(MODEL), ROOT / ".cache/corpora/sotu", tokens, context=64
        )
        mlp_in, mlp_out = transcoder_sets.collect_mlp_pairs(hf_model.eval(), batches)
        layers = transcoder_sets.fit_quick_transcoders(
            mlp_in, mlp_out, d_transcoder=d_transcoder, density=0.01
        )
        write_transcoder_set(folder, layers, scan=SET, model_name=MODEL)
        print(f"fitted the quick set in {time.perf_counter() - t:.1f} s", flush=True)
    return folder, config.num_hidden_layers, config.hidden_size


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-feature-nodes", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--d-transcoder", type=int, default=512)
    parser.add_argument("--calibration-tokens", type=int, default=16_384)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    torch.set_flush_denormal(True)
    print(
        f"cpu cores: {os.cpu_count()}, torch threads {torch.get_num_threads()}, load average "
        f"{os.getloadavg()[0]:.1f}; torch {torch.__version__}, device cpu, float32",
        flush=True,
    )
    folder, n_layers, d_model = fitted_set(args.d_transcoder, args.calibration_tokens)
    options = attribution.AttributionOptions(
        max_feature_nodes=args.max_feature_nodes, batch_size=args.batch_size
    )
    tokenizer = load_tokenizer(MODEL)
    ids = prompts.prompt_ids(tokenizer, PROMPT)
    print(
        f"prompt {PROMPT!r}: {len(ids) - 1} tokens (+ the tracer's special token); set "
        f"{n_layers} layers × {args.d_transcoder} features; {args.max_feature_nodes} feature "
        f"nodes, batch {args.batch_size}",
        flush=True,
    )
    model = load_replacement_model(MODEL, folder, "cpu")

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


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """Unwind through `finally`, so the service and Postgres stop when `timeout` ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    main()
