"""Bench: the feature-map job, the 65k-point map page in Chromium, and the evaluation job.

Three parts, each printing the machine's load average when it starts (the machine is
shared; other load only ever adds time):

1. **UMAP job** (`interpedia_trainer.feature_map.compute_feature_map`: exact cosine kNN,
   umap-learn layout, HDBSCAN clusters) on synthetic decoder directions of the demo's
   width (576): unit vectors scattered around 256 random centres, for 4,608 and 65,536
   features. Each size runs in a fresh process, as a job on a fresh worker does, so the
   wall time includes numba compiling umap-learn's kernels; peak memory is the process's
   maximum RSS. Storing the 65,536 coordinates (one UPDATE from arrays) is timed in part 2.
2. **Map page**: a throwaway embedded PostgreSQL with a 65,536-feature source (those
   coordinates, one explanation each), the real web app, and Chromium (Debian's, headless,
   1280×900). Time to first paint is the `feature-map-painted` performance mark (set when
   the map's first frame is on the canvas) from navigation start; panning moves the view
   by a few pixels on every animation frame for 3 s, through the same `panBy` a mouse drag
   calls, and frames per second is frames drawn over that time. Goals: ≤ 2 s, ≥ 30 fps.
3. **Evaluation job** (`evaluate_core`) on SmolLM2-135M with a random TopK SAE (4,608
   features, k 32, at blocks.6.hook_resid_post; the cost does not depend on the weights)
   over the default evaluation set (the last 64 contexts of 128 tokens of the SOTU corpus,
   CE/KL on 16 of them), against one plain forward of the whole model over the same 64
   contexts, alternating baseline / job / baseline ... (best of each). Goal: ≤ 1.5×.
   The absorption eval's time is printed beside it (no goal).

    .venv/bin/python bench/explore/run.py [--parts umap,page,eval] [--repeats 2]

Runs take several minutes on 2 cores (part 1 dominates: the 65k layout).
"""

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged model is local; never ask the hub

ROOT = Path(__file__).resolve().parents[2]
WIDTH = 576
MODEL_ID, SOURCE_ID = "bench-model", "6-res-bench"
CHROMIUM = Path("/usr/bin/chromium")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min {five:.1f}) on {os.cpu_count()} CPUs"


def synthetic_directions(n: int, seed: int = 0) -> "torch.Tensor":
    """[n, 576] unit decoder directions around 256 random centres (features come in families)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(256, WIDTH, generator=g), dim=1)
    which = torch.randint(0, 256, (n,), generator=g)
    noise = torch.randn(n, WIDTH, generator=g) / WIDTH**0.5
    return torch.nn.functional.normalize(centres[which] + 1.2 * noise, dim=1)


# --- part 1: the UMAP job, one fresh process per size -------------------------------------


def umap_child(n: int, out: Path) -> None:
    """In a fresh process: time the job on n synthetic directions; write coords and stats."""
    import numpy as np

    started = time.perf_counter()
    from interpedia_trainer.feature_map import compute_feature_map

    directions = synthetic_directions(n)
    ready = time.perf_counter()
    result = compute_feature_map(directions)
    done = time.perf_counter()
    np.savez(out, x=result.x, y=result.y, cluster=result.cluster)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stats = {
        "n": n,
        "imports_and_data_s": ready - started,
        "job_s": done - ready,
        "peak_mb": peak,
        "clusters": len(set(result.cluster.tolist()) - {-1}),
    }
    out.with_suffix(".json").write_text(json.dumps(stats))


def bench_umap(sizes: list[int], work: Path) -> dict[int, Path]:
    print(f"== UMAP job on synthetic decoder directions (width {WIDTH}); {load()}", flush=True)
    outputs = {}
    for n in sizes:
        out = work / f"umap-{n}.npz"
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--umap-child", str(n), "--out", str(out)], check=True
        )
        wall = time.perf_counter() - t
        stats = json.loads(out.with_suffix(".json").read_text())
        print(
            f"  {n:>6,} features: job {stats['job_s']:6.1f} s (process wall {wall:6.1f} s, "
            f"of which imports and data {stats['imports_and_data_s']:.1f} s), "
            f"peak RSS {stats['peak_mb']:,.0f} MB, {stats['clusters']} clusters; {load()}",
            flush=True,
        )
        outputs[n] = out
    return outputs


# --- part 2: the 65k map page in Chromium -------------------------------------------------


def seed_database(url: str, n: int, coords_file: Path | None) -> float:
    """A model, a source of n features with map coordinates and explanations; returns the
    seconds the map's one UPDATE took (what `store_feature_map` runs)."""
    import numpy as np
    import psycopg
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from interpedia_db.connect import create_engine
    from interpedia_trainer.feature_map import FeatureMap, store_feature_map

    if coords_file is not None:
        data = np.load(coords_file)
        feature_map = FeatureMap(data["x"], data["y"], data["cluster"])
    else:
        rng = np.random.default_rng(0)
        feature_map = FeatureMap(
            rng.normal(size=n).astype("f4"), rng.normal(size=n).astype("f4"), np.zeros(n, "i8")
        )
    topics = ["taxes", "war", "railroads", "the economy", "treaties", "schools", "farming"]
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO models (id, display_name, layers, d_model) VALUES (%s, %s, 30, %s)",
            (MODEL_ID, MODEL_ID, WIDTH),
        )
        conn.execute(
            "INSERT INTO source_sets (model_id, name) VALUES (%s, 'res-bench')", (MODEL_ID,)
        )
        conn.execute(
            "INSERT INTO sources (model_id, id, set_name, hook_name, layer, architecture, d_sae,"
            " has_dashboards) VALUES (%s, %s, 'res-bench', 'blocks.6.hook_resid_post', 6,"
            " 'topk', %s, true)",
            (MODEL_ID, SOURCE_ID, n),
        )
        with conn.cursor().copy(
            "COPY features (model_id, source_id, index, frac_nonzero, max_act) FROM STDIN"
        ) as copy:
            for i in range(n):
                copy.write_row((MODEL_ID, SOURCE_ID, i, 10 ** -(1 + (i % 50) / 10), 5.0))
        with conn.cursor().copy(
            "COPY explanations (model_id, source_id, index, description, type_name) FROM STDIN"
        ) as copy:
            for i in range(n):
                text = f"mentions of {topics[i % len(topics)]} in speeches, variant {i}"
                copy.write_row((MODEL_ID, SOURCE_ID, i, text, "bench"))

    async def store() -> float:
        engine = create_engine(url)
        try:
            async with async_sessionmaker(engine).begin() as session:
                t = time.perf_counter()
                await store_feature_map(session, MODEL_ID, SOURCE_ID, feature_map)
                return time.perf_counter() - t
        finally:
            await engine.dispose()

    return asyncio.run(store())


def bench_page(n: int, coords_file: Path | None, work: Path) -> None:
    print(f"== the {n:,}-point map page in Chromium; {load()}", flush=True)
    if not CHROMIUM.exists():
        print("  skipped: no /usr/bin/chromium (apt-get install -y chromium)")
        return
    import uvicorn
    from playwright.sync_api import sync_playwright

    from interpedia_db import migrate
    from interpedia_db.embedded import EmbeddedPostgres
    from interpedia_testing.net import free_port, wait_for_http
    from interpedia_webapi.app import create_app
    from interpedia_webapi.settings import WebapiSettings

    server = EmbeddedPostgres(work / "postgres", free_port())
    try:
        server.ensure_running()
        migrate.upgrade(server.url)
        stored = seed_database(server.url, n, coords_file)
        print(f"  storing the map (one UPDATE of {n:,} rows): {stored:.2f} s", flush=True)
        port = free_port()
        app = create_app(WebapiSettings(database_url=server.url, data_dir=work))
        web = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=web.run, daemon=True)
        thread.start()
        wait_for_http(f"http://127.0.0.1:{port}/health", timeout=60)
        url = f"http://127.0.0.1:{port}/{MODEL_ID}/{SOURCE_ID}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
            )
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            paints = []
            for _ in range(3):  # first load, then two reloads (a warm server and cache)
                page.goto(url)
                page.wait_for_function("window.featureMap && window.featureMap.frames > 0")
                paints.append(
                    page.evaluate(
                        "performance.getEntriesByName('feature-map-painted')[0].startTime"
                    )
                )
            pan = page.evaluate(
                """() => new Promise(resolve => {
                    const map = window.featureMap, start = map.frames, times = [];
                    const began = performance.now();
                    function step() {
                        times.push(map.lastFrameMs);
                        map.panBy(3, 1);
                        if (performance.now() - began < 3000) requestAnimationFrame(step);
                        else resolve({frames: map.frames - start, ms: performance.now() - began,
                                      render: times.reduce((a, b) => a + b, 0) / times.length});
                    }
                    requestAnimationFrame(step);
                })"""
            )
            page.screenshot(path=str(work / "map-65k.png"))
            shutil.copy(work / "map-65k.png", ROOT / "artifacts" / "bench-explore-map-65k.png")
            browser.close()
        web.should_exit = True
        thread.join(timeout=10)
        fps = pan["frames"] / pan["ms"] * 1000
        print(
            f"  time to first paint: {paints[0] / 1000:.2f} s first load, "
            f"{min(paints[1:]) / 1000:.2f} s on reload (goal <= 2 s); {load()}",
            flush=True,
        )
        print(
            f"  panning: {fps:.1f} frames/s over {pan['ms'] / 1000:.1f} s, "
            f"{pan['render']:.1f} ms to draw a frame (goal >= 30 fps)",
            flush=True,
        )
    finally:
        server.stop()


# --- part 3: the evaluation job vs one forward --------------------------------------------


def bench_eval(repeats: int, work: Path) -> None:
    import torch
    from sae_lens import SAE

    from interpedia_runtime.saes import save_random_sae
    from interpedia_trainer.absorption import AbsorptionConfig, evaluate_absorption
    from interpedia_trainer.corpus import tail_contexts
    from interpedia_trainer.evaluation import EvaluationSet, evaluate_core
    from interpedia_trainer.model_runtime import load_hooked_model

    print(f"== evaluation job vs one forward over the evaluation set; {load()}", flush=True)
    torch.set_flush_denormal(True)
    model = load_hooked_model()
    hook = "blocks.6.hook_resid_post"
    folder = save_random_sae(
        work / "sae", d_in=model.d_model, d_sae=4608, hook_name=hook, architecture="topk", k=32
    )
    sae = SAE.load_from_disk(folder)
    spec = EvaluationSet()
    contexts = tail_contexts(
        ROOT / ".cache/corpora/sotu",
        model.tokenizer,
        n_contexts=spec.n_contexts,
        context_size=spec.context_size,
    )

    def forward() -> float:
        t = time.perf_counter()
        with torch.no_grad():
            for first in range(0, contexts.shape[0], spec.batch_size):
                model.bridge(contexts[first : first + spec.batch_size], return_type="logits")
        return time.perf_counter() - t

    def job() -> float:
        t = time.perf_counter()
        evaluate_core(model, sae, contexts, spec, corpus="sotu")
        return time.perf_counter() - t

    forward()  # warm-up at the timed shape
    bases, jobs = [forward()], []
    for _ in range(max(1, repeats)):
        jobs.append(job())
        bases.append(forward())
    base, best = min(bases), min(jobs)
    tokens = contexts.numel()
    print(
        f"  one forward, {spec.n_contexts} x {spec.context_size} tokens  {base:7.2f} s "
        f"({tokens / base:,.0f} tokens/s; best of {', '.join(f'{b:.2f}' for b in bases)} s)"
    )
    print(
        f"  core evaluation job              {best:7.2f} s "
        f"(best of {', '.join(f'{b:.2f}' for b in jobs)} s)"
    )
    print(f"  ratio                            {best / base:7.2f}x  (goal <= 1.5x); {load()}")
    t = time.perf_counter()
    output = evaluate_absorption(model, sae, AbsorptionConfig())
    print(
        f"  absorption eval ({output['eval_config']['n_words']} words, "
        f"{output['eval_result_unstructured']['letters_evaluated']} letters found by the "
        f"probe): {time.perf_counter() - t:.1f} s (no goal); {load()}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="umap,page,eval")
    parser.add_argument("--sizes", default="4608,65536")
    parser.add_argument("--repeats", type=int, default=2, help="evaluation job runs")
    parser.add_argument("--umap-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.umap_child is not None:
        umap_child(args.umap_child, args.out)
        return
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parts = set(args.parts.split(","))
    sizes = [int(s) for s in args.sizes.split(",")]
    (ROOT / "artifacts").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="interpedia-bench-explore-"))
    started = time.perf_counter()
    try:
        coords = bench_umap(sizes, work) if "umap" in parts else {}
        if "page" in parts:
            n = max(sizes)
            bench_page(n, coords.get(n), work)
        if "eval" in parts:
            bench_eval(args.repeats, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"total {time.perf_counter() - started:.0f} s")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """Unwind through `finally` (Postgres stopped, temp files removed) when `timeout` ends
    the run; the second SIGTERM `timeout` sends the process group is ignored."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    main()
