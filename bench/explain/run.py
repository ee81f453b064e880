"""The offline explainer on the demo SAE: embedding-scorer ROC-AUC before and after, and random.

What it measures: for every feature of the demo SAE that fired on its dashboard prompts
(or an evenly spaced `--sample` of them), three explanations are scored by the embedding
scorer (`scoring.embedding_score`, the local all-MiniLM-L6-v2) on the feature's stored
examples, read the way the demo's own `interpedia score` reads them
(`storage.load_feature_examples`, up to 40 examples). The examples are split, ranked by
max activation, into alternate halves: explanations are written from the 1st, 3rd, 5th...
and scored on the 2nd, 4th, 6th..., so no explanation is scored on what it was made from.

- before: the offline explainer as it was at `BEFORE_COMMIT`, loaded from git history
  (so the old code is measured, not a copy of it);
- after: today's `explain.offline_explanation`;
- random: "after" explanations handed to other features (a seeded derangement), the
  baseline an explanation must beat to say anything about its feature.

Everything the scorer will embed (explanations, held-out examples and their contrast
texts) is embedded first in one pass, deduplicated and sorted by length, into a cache by
text kept in `--data-dir` (`embeddings/`, one shard per chunk, so a stopped run keeps what
it did); scoring then runs the unchanged `scoring.embedding_score` on cached vectors. The
local model is the cost: about 19 texts/s of 32-token windows (5 of whole 128-token
examples) at load 6-12 on 2 cores.

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
    """The local embedder behind a cache by text, kept on disk in shards (one per `fill`),
    so the three explainers share example vectors and a stopped run keeps what it did."""

    def __init__(self, inner: LocalEmbedder, folder: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimensions = inner.dimensions
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.cache: dict[str, np.ndarray] = {}
        for shard in sorted(folder.glob("*.pkl")):
            self.cache.update(pickle.loads(shard.read_bytes()))
        self.embedded = 0
        self.seconds = 0.0

    def fill(self, texts: list[str], chunk: int = 1024) -> None:
        """Embed every text not cached yet, in length-sorted chunks (one shard each)."""
        missing = sorted(set(texts) - self.cache.keys(), key=len)
        for start in range(0, len(missing), chunk):
            batch = missing[start : start + chunk]
            started = time.perf_counter()
            vectors = self.inner.embed_sync(batch)
            self.seconds += time.perf_counter() - started
            self.embedded += len(batch)
            new = dict(zip(batch, vectors, strict=True))
            self.cache.update(new)
            shard = self.folder / f"{time.time_ns()}.pkl"
            shard.write_bytes(pickle.dumps(new))
            print(
                f"  embedded {self.embedded}/{len(missing)} texts, "
                f"{self.embedded / self.seconds:.1f} texts/s, "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )

    async def embed(self, texts: list[str]) -> np.ndarray:
        self.fill(texts)
        return np.stack([self.cache[t] for t in texts])


def held_out_split(records: list[ActivationRecord]) -> tuple[list, list]:
    """(to explain from, to score on): the examples ranked by max activation, alternately,
    so an explanation is scored on examples it was not written from, of the same strength."""
    ranked = sorted(records, key=lambda r: -r.max_value)
    return ranked[0::2], ranked[1::2]


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
    # A feature with one example has nothing left to score on once it is explained.
    split = {i: held_out_split(f.records) for i, f in features.items()}
    indices = [i for i in indices if split[i][1]]
    print(
        f"{model_id}/{source_id}: {sum(fired.values())} of {len(fired)} features fired; "
        f"scoring {len(indices)} ({len(features) - len(indices)} with one example left out); "
        "explained from examples 1, 3, 5... by max activation, scored on 2, 4, 6...",
        flush=True,
    )
    before = before_explainer()
    texts: dict[str, list[str]] = {"before": [], "after": []}
    started = time.perf_counter()
    for i in indices:
        texts["before"].append(before(split[i][0], features[i].logit_tokens))
    seconds_before = time.perf_counter() - started
    started = time.perf_counter()
    for i in indices:
        texts["after"].append(
            explain.offline_explanation(split[i][0], features[i].logit_tokens).description
        )
    seconds_after = time.perf_counter() - started
    order = derangement(len(indices), args.seed)
    texts["random"] = [texts["after"][j] for j in order]
    print(
        f"explained in {seconds_before:.1f} s (before) / {seconds_after:.1f} s (after)",
        flush=True,
    )

    # Everything the scorer will embed, in one length-sorted pass; scoring then only reads
    # the cache, through the unchanged `scoring.embedding_score`.
    embedder = CachedEmbedder(LocalEmbedder(), args.data_dir / "embeddings")
    wanted = [t for column in texts.values() for t in column]
    for i in indices:
        contrast = scoring.embedding_contrast(split[i][1])
        wanted += contrast.activating + contrast.non_activating
    unique = set(wanted)
    print(
        f"{len(wanted)} texts to embed, {len(unique)} distinct, "
        f"{len(unique - embedder.cache.keys())} not cached",
        flush=True,
    )
    started = time.perf_counter()
    embedder.fill(wanted)
    scores: dict[str, list[float]] = {name: [] for name in texts}
    for n, i in enumerate(indices):
        for name, column in texts.items():
            result = await scoring.embedding_score(embedder, column[n], split[i][1])
            scores[name].append(result.value)
    print(
        f"scored {len(indices)} x 3 in {time.perf_counter() - started:.0f} s "
        f"({embedder.embedded} texts embedded in {embedder.seconds:.0f} s, the rest cached; "
        f"load {os.getloadavg()[0]:.1f})",
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
