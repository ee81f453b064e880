"""The offline explainer on the demo SAE: embedding-scorer ROC-AUC before and after, and random.

What it measures: for every feature of the demo SAE that fired on its dashboard prompts
(or an evenly spaced `--sample` of them), three explanations are scored by the embedding
scorer (`scoring.embedding_score`, the local all-MiniLM-L6-v2) on the feature's stored
examples, read the way the demo's own `interpedia score` reads them
(`storage.load_feature_examples`, up to 40 examples):

- before: the offline explainer as it was at `BEFORE_COMMIT`, loaded from git history
  (so the old code is measured, not a copy of it);
- after: today's `explain.offline_explanation`;
- random: "after" explanations handed to other features (a seeded derangement), the
  baseline an explanation must beat to say anything about its feature.

All three share one embedding cache, so each example text is embedded once; the cache is
kept in `--data-dir` (`embeddings.pkl`), so a rerun embeds only explanations it has not
seen (the local model is slow on a shared CPU: about 5 texts/s under load 10).

The demo SAE and its dashboards are built the demo's way (`interpedia_platform.demo`'s
train and dashboard steps, the same commands with the same sizes) into `--data-dir`
(default `.cache/bench/explain`, kept: a rerun reuses them), on an embedded PostgreSQL
there that the run stops on exit. Building them takes about 15 minutes on 2 quiet cores.

    .venv/bin/python bench/explain/run.py               # every fired feature
    .venv/bin/python bench/explain/run.py --sample 200  # quicker
"""

import argparse
import asyncio
import importlib.util
import os
import pickle
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

from interpedia_autointerp import explain, scoring, storage
from interpedia_autointerp.embeddings import LocalEmbedder
from interpedia_autointerp.examples import ActivationRecord
from interpedia_db import migrate
from interpedia_db.connect import create_engine, create_sessionmaker
from interpedia_db.embedded import EmbeddedPostgres
from interpedia_platform.demo import DemoSettings, demo_state, demo_steps

ROOT = Path(__file__).resolve().parents[2]
# main before this change: the explainer that wrote `"recol","recall"…; as in "..."; then ...`.
BEFORE_COMMIT = "475b4dcb89460c4b307c8be7cbd2b69af3c16dd4"
EXPLAIN_PATH = "apps/autointerp/interpedia_autointerp/explain.py"


def before_explainer() -> Callable[[list[ActivationRecord], list[str]], str]:
    """The offline explainer at BEFORE_COMMIT, imported from `git show`."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{BEFORE_COMMIT}:{EXPLAIN_PATH}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader("explain_before", loader=None)
    assert spec is not None
    module = ModuleType(spec.name)
    exec(compile(source, f"{BEFORE_COMMIT[:8]}:{EXPLAIN_PATH}", "exec"), module.__dict__)
    return lambda records, logit_tokens: (
        module.offline_explanation(records, logit_tokens).description
    )


class CachedEmbedder:
    """The local embedder with a cache by text: the three explainers share example vectors."""

    def __init__(self, inner: LocalEmbedder, path: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimensions = inner.dimensions
        self.path = path
        self.cache: dict[str, np.ndarray] = pickle.loads(path.read_bytes()) if path.exists() else {}
        self.embedded = 0
        self.seconds = 0.0

    def save(self) -> None:
        self.path.write_bytes(pickle.dumps(self.cache))

    async def embed(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            started = time.perf_counter()
            for text, vector in zip(missing, await self.inner.embed(missing), strict=True):
                self.cache[text] = vector
            self.embedded += len(missing)
            self.seconds += time.perf_counter() - started
        return np.stack([self.cache[t] for t in texts])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_demo(settings: DemoSettings, url: str) -> None:
    """The demo's train and dashboard steps, for whichever is not stored yet."""
    steps = demo_steps(settings, demo_state(url, settings))
    wanted = [(t, c) for t, c in steps if c[1] in ("train", "dashboards")]
    env = os.environ | {"DATABASE_URL": url, "HF_HUB_OFFLINE": "1"}
    for title, command in wanted:
        print(f"==> {title}", flush=True)
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True)
        print(f"    done in {time.perf_counter() - started:.0f} s", flush=True)


def derangement(n: int, seed: int) -> list[int]:
    """A seeded permutation with no fixed point: feature i gets feature order[i]'s text."""
    rng = random.Random(seed)
    order = list(range(n))
    while n > 1 and any(i == j for i, j in enumerate(order)):
        rng.shuffle(order)
    return order


def summary(name: str, values: list[float]) -> str:
    share = sum(v >= 0.65 for v in values) / len(values)
    return (
        f"{name:7s} mean {statistics.mean(values):.3f}  median {statistics.median(values):.3f}  "
        f"min {min(values):.3f}  max {max(values):.3f}  >=0.65: {share:.0%}"
    )


async def measure(url: str, settings: DemoSettings, args: argparse.Namespace) -> None:
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    model_id, source_id = settings.model_id, settings.source_id
    try:
        async with sessionmaker.begin() as session:
            fired = await storage.features_fired(session, model_id, source_id)
            indices = [i for i, has in fired.items() if has]
            if args.sample:
                indices = indices[:: max(len(indices) // args.sample, 1)][: args.sample]
            features = {
                i: await storage.load_feature_examples(session, model_id, source_id, i)
                for i in indices
            }
    finally:
        await engine.dispose()
    print(
        f"{model_id}/{source_id}: {sum(fired.values())} of {len(fired)} features fired; "
        f"scoring {len(indices)}",
        flush=True,
    )
    before = before_explainer()
    texts = {"before": [], "after": []}
    started = time.perf_counter()
    for examples in features.values():
        texts["before"].append(before(examples.records, examples.logit_tokens))
    seconds_before = time.perf_counter() - started
    started = time.perf_counter()
    for examples in features.values():
        texts["after"].append(
            explain.offline_explanation(examples.records, examples.logit_tokens).description
        )
    seconds_after = time.perf_counter() - started
    order = derangement(len(indices), args.seed)
    texts["random"] = [texts["after"][j] for j in order]
    print(
        f"explained in {seconds_before:.1f} s (before) / {seconds_after:.1f} s (after)",
        flush=True,
    )

    embedder = CachedEmbedder(LocalEmbedder(), args.data_dir / "embeddings.pkl")
    scores: dict[str, list[float]] = {name: [] for name in texts}
    started = time.perf_counter()
    for n, examples in enumerate(features.values()):
        for name, column in texts.items():
            result = await scoring.embedding_score(embedder, column[n], examples.records)
            scores[name].append(result.value)
        if (n + 1) % 25 == 0:
            embedder.save()
            means = ", ".join(f"{k} {statistics.mean(v):.3f}" for k, v in scores.items())
            elapsed = time.perf_counter() - started
            print(f"  {n + 1}/{len(indices)} scored, {elapsed:.0f} s; means {means}", flush=True)
    embedder.save()
    print(
        f"scored {len(indices)} x 3 in {time.perf_counter() - started:.0f} s "
        f"({embedder.embedded} texts embedded in {embedder.seconds:.0f} s, the rest cached)",
        flush=True,
    )
    for n in range(min(args.show, len(indices))):
        k = n * len(indices) // max(args.show, 1)
        print(f"feature {indices[k]}:")
        for name in ("before", "after"):
            print(f"  {name:6s} {scores[name][k]:.2f}  {texts[name][k]}")
    print()
    for name, values in scores.items():
        print(summary(name, values))
    wins = sum(a > b for a, b in zip(scores["after"], scores["before"], strict=True))
    print(f"after > before on {wins} of {len(indices)} features")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".cache" / "bench" / "explain")
    parser.add_argument("--sample", type=int, default=0, help="features to score (0: all fired)")
    parser.add_argument("--seed", type=int, default=0, help="of the random baseline")
    parser.add_argument("--show", type=int, default=8, help="features to print explanations of")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} (1 min)", flush=True)
    settings = DemoSettings(data_dir=args.data_dir.absolute())
    server = EmbeddedPostgres(settings.embedded_db_dir, free_port())
    started = server.ensure_running()
    try:
        migrate.upgrade(server.url)
        build_demo(settings, server.url)
        asyncio.run(measure(server.url, settings, args))
    finally:
        if started:
            server.stop()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """Unwind through `finally`, so Postgres is stopped when `timeout` ends the run."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    main()
