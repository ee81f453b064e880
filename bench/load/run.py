"""Bench: 32 concurrent clients for 60 s on the web API, then on the inference service.

Starts the real services as their own processes (`interpedia-inference`, `-autointerp`,
`-webapi serve`) on a throwaway embedded Postgres, with the packaged SmolLM2-135M and a
random 2048-feature SAE at `blocks.6.hook_resid_post` (source `6-res-load`), whose
features are also in the database (an imported export). Then 32 clients, each calling
one request after another, run a mix of what users do for 60 s against the web API and
then for 60 s against the inference service. It prints every status with its count and
the p50/p99 latency per call, and exits 1 when any answer was a 5xx or failed to arrive.

The goal: zero 5xx. 4xx are counted too (a request the mix makes wrongly is a bench bug).
The web API's rate limit is raised for the run: 32 clients from one address are not abuse.

    .venv/bin/python bench/load/run.py [--clients 32] [--seconds 60] [--only webapi|inference]
"""

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the packaged models are local; never ask the hub

import httpx

from interpedia_db import migrate
from interpedia_db.connect import create_engine, create_sessionmaker
from interpedia_db.embedded import EmbeddedPostgres
from interpedia_runtime.saes import save_random_sae
from interpedia_testing.net import free_port
from interpedia_testing.servers import running_services
from interpedia_webapi import feature_import

# The web API's test factories write a small Neuronpedia-format export: reuse them.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "apps" / "webapi" / "tests"))
from webapi_factories import write_export

MODEL, SOURCE, SOURCE_SET = "smollm2-135m", "6-res-load", "res-load"
D_SAE = 2048
SECRET = "load-bench-secret"
TEXTS = [
    "The State of the Union address reviews the condition of the nation.",
    "Congress passed the budget after a long debate about taxes and spending.",
    "My cat sleeps on the sofa all afternoon.",
    "The economy grew faster than expected in the last quarter of the year.",
    "We must invest in schools, roads and the health of our people.",
    "The river flooded the valley after heavy rain in the spring.",
]


@dataclass
class Call:
    name: str
    weight: int
    request: Callable[[random.Random], dict[str, Any]]  # httpx.request keyword arguments


def _feature(rng: random.Random) -> int:
    return rng.randrange(D_SAE)


def webapi_mix() -> list[Call]:
    """What the pages and Neuronpedia's clients do, in rough proportion."""

    def steer(rng: random.Random) -> dict[str, Any]:
        feature = {"modelId": MODEL, "layer": SOURCE, "index": _feature(rng), "strength": 10}
        body = {
            "modelId": MODEL,
            "prompt": rng.choice(TEXTS)[:40],
            "features": [feature],
            "n_tokens": 8,
            "seed": rng.randrange(1 << 30),  # past the cache, like a user trying seeds
            "stream": rng.random() < 0.5,
        }
        return {"method": "POST", "url": "/api/steer", "json": body}

    return [
        Call(
            "GET /api/feature",
            25,
            lambda r: {"method": "GET", "url": f"/api/feature/{MODEL}/{SOURCE}/{_feature(r)}"},
        ),
        Call(
            "GET feature page",
            10,
            lambda r: {"method": "GET", "url": f"/{MODEL}/{SOURCE}/{_feature(r)}"},
        ),
        Call("GET / and /steer", 5, lambda r: {"method": "GET", "url": r.choice(["/", "/steer"])}),
        Call("GET /api/model/list", 5, lambda r: {"method": "GET", "url": "/api/model/list"}),
        Call(
            "POST /api/activation/new",
            15,
            lambda r: {
                "method": "POST",
                "url": "/api/activation/new",
                "json": {
                    "feature": {"modelId": MODEL, "layer": SOURCE, "index": str(_feature(r))},
                    "customText": r.choice(TEXTS),
                },
            },
        ),
        Call(
            "POST /api/search-all",
            8,
            lambda r: {
                "method": "POST",
                "url": "/api/search-all",
                "json": {"modelId": MODEL, "sourceSet": SOURCE_SET, "text": r.choice(TEXTS)},
            },
        ),
        Call(
            "POST /api/search-topk-by-token",
            8,
            lambda r: {
                "method": "POST",
                "url": "/api/search-topk-by-token",
                "json": {"modelId": MODEL, "source": SOURCE, "text": r.choice(TEXTS)},
            },
        ),
        Call(
            "POST /api/explanation/search (keyword)",
            8,
            lambda r: {
                "method": "POST",
                "url": "/api/explanation/search-all",
                "json": {
                    "query": r.choice(["cats", "dogs", "home", "mentions"]),
                    "mode": "keyword",
                },
            },
        ),
        Call(
            "POST /api/explanation/search (semantic)",
            8,
            lambda r: {
                "method": "POST",
                "url": "/api/explanation/search-model",
                "json": {"modelId": MODEL, "query": r.choice(TEXTS), "mode": "semantic"},
            },
        ),
        Call("POST /api/steer", 8, steer),
    ]


def inference_mix() -> list[Call]:
    """The inference service's endpoints, as the web API and Neuronpedia's clients call them."""

    def post(path: str, body: Callable[[random.Random], dict[str, Any]]) -> Callable:
        return lambda r: {
            "method": "POST",
            "url": f"/v1/{path}",
            "json": {"model": MODEL, **body(r)},
        }

    return [
        Call(
            "activation/single",
            30,
            post(
                "activation/single",
                lambda r: {"prompt": r.choice(TEXTS), "source": SOURCE, "index": _feature(r)},
            ),
        ),
        Call(
            "activation/all",
            20,
            post("activation/all", lambda r: {"prompt": r.choice(TEXTS), "source_set": SOURCE_SET}),
        ),
        Call(
            "activation/topk-by-token",
            20,
            post(
                "activation/topk-by-token", lambda r: {"prompt": r.choice(TEXTS), "source": SOURCE}
            ),
        ),
        Call("tokenize", 10, post("tokenize", lambda r: {"text": r.choice(TEXTS)})),
        Call(
            "util/sae-vector",
            10,
            post("util/sae-vector", lambda r: {"source": SOURCE, "index": _feature(r)}),
        ),
        Call(
            "steer/completion",
            10,
            post(
                "steer/completion",
                lambda r: {
                    "prompt": r.choice(TEXTS)[:40],
                    "types": ["STEERED", "DEFAULT"],
                    "features": [
                        {"model": MODEL, "source": SOURCE, "index": _feature(r), "strength": 10}
                    ],
                    "n_completion_tokens": 8,
                    "seed": r.randrange(1 << 30),
                },
            ),
        ),
    ]


@dataclass
class Results:
    statuses: Counter[int | str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    by_call: dict[str, Counter[int | str]] = field(default_factory=lambda: defaultdict(Counter))
    examples: dict[int | str, str] = field(default_factory=dict)  # one answer per bad status


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def hammer(
    base_url: str, mix: list[Call], clients: int, seconds: float, headers: dict[str, str]
) -> Results:
    results = Results()
    deadline = time.monotonic() + seconds
    weights = [c.weight for c in mix]
    limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=clients * 2)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=180, limits=limits, headers=headers
    ) as http:

        async def client(number: int) -> None:
            rng = random.Random(number)
            while time.monotonic() < deadline:
                call = rng.choices(mix, weights)[0]
                started = time.monotonic()
                try:
                    response = await http.request(**call.request(rng))
                    status: int | str = response.status_code
                    if status >= 400 and status not in results.examples:
                        results.examples[status] = f"{call.name}: {response.text[:300]}"
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                    results.examples.setdefault(status, f"{call.name}: {exc!r}")
                results.statuses[status] += 1
                results.by_call[call.name][status] += 1
                results.latencies[call.name].append(time.monotonic() - started)

        await asyncio.gather(*(client(i) for i in range(clients)))
    return results


def report(title: str, results: Results, seconds: float) -> bool:
    """Print the figures; True when nothing was a 5xx or lost."""
    total = sum(results.statuses.values())
    every = [v for values in results.latencies.values() for v in values]
    print(f"\n== {title}: {total} requests in {seconds:.0f} s = {total / seconds:.1f}/s")
    print(
        "statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(results.statuses.items(), key=str))
    )
    print(
        f"latency all calls: p50 {pct(every, 0.5) * 1000:8.0f} ms  "
        f"p99 {pct(every, 0.99) * 1000:8.0f} ms"
    )
    for name, values in sorted(results.latencies.items()):
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(results.by_call[name].items(), key=str))
        print(
            f"  {name:<40} n {len(values):5d}  p50 {pct(values, 0.5) * 1000:8.0f} ms  "
            f"p99 {pct(values, 0.99) * 1000:8.0f} ms  [{statuses}]"
        )
    for status, example in results.examples.items():
        print(f"  e.g. {status}: {example}")
    bad = [s for s in results.statuses if not isinstance(s, int) or s >= 500]
    return not bad


async def seed(database_url: str, root: Path) -> None:
    """The served SAE's features in the database, imported from a Neuronpedia export."""
    export = write_export(root / "export", MODEL, SOURCE, n_features=D_SAE, acts_per_feature=2)
    engine = create_engine(database_url)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker.begin() as session:
        job = await feature_import.start_import(session, str(export))
    done = await feature_import.run_import(sessionmaker, job.id, work_dir=root / "work")
    await engine.dispose()
    if done.status != "complete":
        raise SystemExit(f"seeding failed: {done.status}")


def run(args: argparse.Namespace, root: Path, database_url: str) -> bool:
    asyncio.run(seed(database_url, root))
    sae = save_random_sae(root / "sae", d_in=576, d_sae=D_SAE, hook_name="blocks.6.hook_resid_post")
    env = {
        "DATABASE_URL": database_url,
        "INTERPEDIA_INFERENCE_MODEL_ID": MODEL,
        "INTERPEDIA_INFERENCE_SAE_SOURCES": str(sae),
        "INTERPEDIA_INFERENCE_SAE_SOURCE_SET": SOURCE_SET,
        "INTERPEDIA_INFERENCE_SECRET": SECRET,
        "INTERPEDIA_WEBAPI_INFERENCE_SECRET": SECRET,
        "INTERPEDIA_WEBAPI_RATE_LIMIT_PER_MINUTE": "1000000",
        "INTERPEDIA_WEBAPI_RATE_LIMIT_BURST": "100000",
    }
    services = ["inference", "autointerp", "webapi"]
    logs = Path(tempfile.mkdtemp(prefix="interpedia-bench-load-logs-"))  # kept: read on a 5xx
    started = time.monotonic()
    with running_services(services, env, logs, timeout=600) as urls:
        print(f"services up in {time.monotonic() - started:.0f} s: {urls}; logs in {logs}")
        # semantic search needs the explanations embedded with the local model
        subprocess.run(
            [
                str(Path(sys.executable).parent / "interpedia"),
                "embed-explanations",
                "--model",
                MODEL,
            ],
            env={**os.environ, "DATABASE_URL": database_url},
            check=True,
            capture_output=True,
        )
        ok = True
        phases = [
            ("webapi", webapi_mix(), {}),
            ("inference", inference_mix(), {"x-secret-key": SECRET}),
        ]
        for name, mix, headers in phases:
            if args.only and args.only != name:
                continue
            load = os.getloadavg()[0]
            results = asyncio.run(hammer(urls[name], mix, args.clients, args.seconds, headers))
            ok &= report(
                f"{name}: {args.clients} clients (load average {load:.1f} at start)",
                results,
                args.seconds,
            )
    return ok


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """Unwind through `finally` (services and Postgres stopped) when `timeout` ends the run."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--only", choices=["webapi", "inference"])
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    root = Path(tempfile.mkdtemp(prefix="interpedia-bench-load-"))
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}, scratch {root}"
    )
    server = EmbeddedPostgres(root / "pg", free_port())
    ok = False
    try:
        server.ensure_running()
        migrate.upgrade(server.url)
        ok = run(args, root, server.url)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    print("\nzero 5xx: " + ("yes" if ok else "NO"))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
