"""Explanation search at scale: 1,000,000 explanations, HNSW build, latency and recall.

How the data is made: 100,000 distinct explanation-like texts (one of ten explainer-style
templates, e.g. "mentions of {}" or 'the phrase "{}"', around a 1–4 word run of the State
of the Union corpus in .cache/corpora/sotu) are embedded for real with the local
all-MiniLM-L6-v2 (cached in .cache/bench/ after the first run). Each of the N
explanations takes one text as its description, and as its vector that text's embedding
plus U(0, 0.5) × another text's, L2-normalised (see `make_vectors`). Queries are 1–3
corpus words that are not among the texts, embedded for real: what people type.

What it prints: load time, HNSW build time (the partial per-model index that
`interpedia_db.embeddings` creates), p50/p95 latency of semantic and hybrid top-10
through `interpedia_autointerp.search` (query vectors precomputed; the local
model's query embedding time is printed separately), and recall@10 of semantic
search against exact search (numpy over all N vectors), at the app's ef_search defaults
(semantic 600, hybrid 200), then at 100, 200 and 800.

    .venv/bin/python bench/search/run.py            # 1,000,000 explanations
    .venv/bin/python bench/search/run.py --n 100000 # quicker
    .venv/bin/python bench/search/run.py --hnsw-m 32 --hnsw-ef-construction 128  # not the app's
"""

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import socket
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from interpedia_autointerp import search
from interpedia_autointerp.embeddings import LOCAL_DIMENSIONS, LOCAL_MODEL_NAME, LocalEmbedder
from interpedia_db import migrate
from interpedia_db.connect import create_engine, create_sessionmaker
from interpedia_db.embedded import EmbeddedPostgres
from interpedia_db.embeddings import hnsw_index_sql

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / ".cache" / "corpora" / "sotu"
MODEL_ID = "bench-model"
SOURCE_ID = "0-res-bench"

# Shapes of explanation text, as explainers write them around what a feature responds to.
TEMPLATES = (
    "{}",
    "mentions of {}",
    "references to {}",
    'the phrase "{}"',
    "text about {}",
    "words like {}",
    "talk of {}",
    "{} in political speeches",
    "sentences about {}",
    "the word {} in context",
)
_STOPWORDS = """a an and are as at be by for from has have in is it its of on or that the their
them this to was were which will with we our us i you he she they not but all so no"""
STOPWORDS = frozenset(_STOPWORDS.split())


def corpus_words() -> list[str]:
    if not CORPUS.is_dir():
        raise SystemExit(f"{CORPUS} is missing: run `make setup` first (it fetches the corpus)")
    text = " ".join(p.read_text(errors="ignore") for p in sorted(CORPUS.glob("*.txt")))
    return re.findall(r"[a-z][a-z'-]*", text.lower())


def ngram(words: list[str], rng: random.Random, longest: int) -> str | None:
    """A 1–`longest`-word run of the corpus that neither starts nor ends on a stopword."""
    n = rng.randint(1, longest)
    start = rng.randrange(len(words) - n)
    run = words[start : start + n]
    if run[0] in STOPWORDS or run[-1] in STOPWORDS:
        return None
    return " ".join(run)


def explanation_texts(
    words: list[str], count: int, rng: random.Random, taken: set[str]
) -> list[str]:
    """`count` distinct explanation-like texts: a template around a corpus n-gram."""
    out: list[str] = []
    while len(out) < count:
        phrase = ngram(words, rng, 4)
        if phrase is None:
            continue
        text = rng.choice(TEMPLATES).format(phrase)
        if text not in taken:
            taken.add(text)
            out.append(text)
    return out


def query_texts(words: list[str], count: int, rng: random.Random, taken: set[str]) -> list[str]:
    """What people type into a search box: 1–3 corpus words, none of them an explanation."""
    out: list[str] = []
    while len(out) < count:
        phrase = ngram(words, rng, 3)
        if phrase is not None and phrase not in taken:
            taken.add(phrase)
            out.append(phrase)
    return out


def make_vectors(
    base: np.ndarray, n: int, rng: np.random.Generator, blend: float
) -> tuple[np.ndarray, np.ndarray]:
    """[n, d] unit vectors from the real embeddings, and the text each row describes.

    Row i is text a's embedding + U(0, `blend`) × text b's, normalised: as many distinct
    vectors as rows, each in the span of real embeddings (no isotropic noise, which would
    raise the data's intrinsic dimension far above that of text embeddings). A text is
    reused by about n / len(base) rows, as a common explanation is across sources.
    """
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    origin = rng.integers(0, len(base), size=n)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        size = stop - start
        weight = rng.uniform(0, blend, size=(size, 1)).astype(np.float32)
        block = base[origin[start:stop]] + weight * base[rng.integers(0, len(base), size=size)]
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out, origin


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load(url: str, vectors: np.ndarray, descriptions: list[str]) -> None:
    n = len(vectors)
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute(
            "INSERT INTO models (id, display_name, layers, d_model) VALUES (%s, %s, 30, 576)",
            (MODEL_ID, MODEL_ID),
        )
        conn.execute(
            "INSERT INTO source_sets (model_id, name) VALUES (%s, 'res-bench')", (MODEL_ID,)
        )
        conn.execute(
            "INSERT INTO sources (model_id, id, set_name, hook_name, layer, architecture, d_sae)"
            " VALUES (%s, %s, 'res-bench', 'blocks.0.hook_resid_post', 0, 'standard', %s)",
            (MODEL_ID, SOURCE_ID, n),
        )
        # The migration registers the local model with its HNSW index; bulk-loading into an
        # index inserts vectors one by one, so drop it here and build it afterwards (timed).
        for (name,) in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'explanation_embeddings'"
            " AND indexdef LIKE %s",
            (f"%hnsw%{LOCAL_MODEL_NAME}%",),
        ).fetchall():
            conn.execute(f'DROP INDEX "{name}"')
        with conn.cursor() as cur:
            with cur.copy("COPY features (model_id, source_id, index) FROM STDIN") as copy:
                for i in range(n):
                    copy.write_row((MODEL_ID, SOURCE_ID, i))
            with cur.copy(
                "COPY explanations (id, model_id, source_id, index, description, type_name)"
                " FROM STDIN"
            ) as copy:
                for i in range(n):
                    copy.write_row((i + 1, MODEL_ID, SOURCE_ID, i, descriptions[i], "bench"))
            conn.execute("SELECT setval(pg_get_serial_sequence('explanations', 'id'), %s)", (n,))
            with cur.copy(
                "COPY explanation_embeddings (explanation_id, embedding_model, embedding)"
                " FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "varchar", "vector"])
                for i in range(n):
                    copy.write_row((i + 1, LOCAL_MODEL_NAME, vectors[i]))
        conn.execute("VACUUM ANALYZE explanations")
        conn.execute("VACUUM ANALYZE explanation_embeddings")


def build_index(url: str, memory: str, m: int | None, ef_construction: int | None) -> None:
    """The app's index DDL; with m/ef_construction, the same index with other build options."""
    ddl = hnsw_index_sql(LOCAL_MODEL_NAME, LOCAL_DIMENSIONS)
    options = []
    if m is not None:
        options.append(f"m = {int(m)}")
    if ef_construction is not None:
        options.append(f"ef_construction = {int(ef_construction)}")
    if options:  # same expression and predicate, so the search still uses it
        ddl = ddl.replace(" WHERE ", f" WITH ({', '.join(options)}) WHERE ", 1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET maintenance_work_mem = '{memory}'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        conn.execute(ddl)


class FixedEmbedder:
    """Hands the search code precomputed query vectors, so timings are the database's."""

    name = LOCAL_MODEL_NAME
    dimensions = LOCAL_DIMENSIONS

    def __init__(self) -> None:
        self.next: np.ndarray | None = None

    async def embed(self, texts: list[str]) -> np.ndarray:
        assert self.next is not None
        return self.next[None, :]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


async def measure(
    url: str,
    queries: list[str],
    qvectors: np.ndarray,
    exact: list[set[int]],
    runs: list[tuple[str, int]],
) -> dict[tuple[str, int], tuple[list[float], list[float]]]:
    """(mode, ef_search) → (latencies in ms, recall@10 per query; hybrid recall is not exact's)."""
    engine = create_engine(url, pool_size=2)
    sessionmaker = create_sessionmaker(engine)
    embedder = FixedEmbedder()
    filters = search.SearchFilters(model_id=MODEL_ID)
    results: dict[tuple[str, int], tuple[list[float], list[float]]] = {}
    for mode, ef_search in runs:
        timings: list[float] = []
        recalls: list[float] = []
        for warm in range(2):  # the first pass warms caches; the second is measured
            for text, vector, truth in zip(queries, qvectors, exact, strict=True):
                embedder.next = vector
                start = time.perf_counter()
                async with sessionmaker.begin() as session:
                    hits = await search.search_explanations(
                        session,
                        embedder,
                        text,
                        mode,  # type: ignore[arg-type]
                        filters,
                        limit=10,
                        ef_search=ef_search,
                    )
                elapsed = time.perf_counter() - start
                if warm:
                    timings.append(elapsed * 1000)
                    recalls.append(len({h.explanation_id for h in hits} & truth) / 10)
        results[(mode, ef_search)] = (timings, recalls)
    await engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--texts", type=int, default=100_000, help="distinct texts embedded")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--maintenance-work-mem", default="3GB")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blend", type=float, default=0.5, help="max weight of the 2nd text")
    # Experiments only: the app builds with pgvector's defaults (m 16, ef_construction 64).
    parser.add_argument("--hnsw-m", type=int, default=None, help="override the index's m")
    parser.add_argument(
        "--hnsw-ef-construction", type=int, default=None, help="override ef_construction"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = time.perf_counter()

    print(
        f"cpu cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, N={args.n:,}, "
        f"dims={LOCAL_DIMENSIONS}, float32",
        flush=True,
    )
    t = time.perf_counter()
    words, rng_text, taken = corpus_words(), random.Random(args.seed), set()
    texts = explanation_texts(words, args.texts, rng_text, taken)
    queries = query_texts(words, args.queries, rng_text, taken)
    embedder = LocalEmbedder()
    # Embedding 100,000 texts takes about 3 minutes on 2 cores: keep them between runs.
    name = f"search-texts-{args.seed}-{args.texts}-{args.queries}.npy"
    cached = ROOT / ".cache" / "bench" / name
    if cached.exists():
        embedded = np.load(cached)
    else:
        embedded = embedder.embed_sync(texts + queries)
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, embedded)
    base, qvectors = embedded[: args.texts], embedded[args.texts :]
    print(
        f"{len(texts):,} explanation texts + {len(queries)} queries embedded (or read from "
        f"{cached.name}) in {time.perf_counter() - t:.1f} s; e.g. {texts[:3]}, "
        f"queries {queries[:3]}",
        flush=True,
    )
    single = []
    for q in queries[:50]:
        s = time.perf_counter()
        embedder.embed_sync([q])
        single.append((time.perf_counter() - s) * 1000)
    print(f"query embedding (local model, 1 text): p50 {percentile(single, 50):.1f} ms", flush=True)

    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    vectors, origin = make_vectors(base, args.n, rng, args.blend)
    descriptions = [texts[i] for i in origin]
    print(
        f"made {args.n:,} vectors (text + U(0, {args.blend}) x another) "
        f"in {time.perf_counter() - t:.1f} s",
        flush=True,
    )

    t = time.perf_counter()
    exact = []
    gaps = []
    for qv in qvectors:
        scores = vectors @ qv  # [N]
        top = np.argpartition(-scores, 20)[:20]
        ranked = top[np.argsort(-scores[top])]
        exact.append({int(i) + 1 for i in ranked[:10]})
        gaps.append(float(scores[ranked[9]] - scores[ranked[19]]))
    print(f"exact top-10 for {len(queries)} queries in {time.perf_counter() - t:.1f} s", flush=True)
    print(f"cosine gap between exact 10th and 20th hit: median {np.median(gaps):.4f}", flush=True)

    root = Path(tempfile.mkdtemp(prefix="interpedia-bench-"))
    server = EmbeddedPostgres(root / "postgres", free_port())
    try:
        server.ensure_running()
        migrate.upgrade(server.url)
        with psycopg.connect(server.url) as conn:
            buffers = conn.execute("SHOW shared_buffers").fetchone()[0]
        print(f"embedded PostgreSQL with the app's settings: shared_buffers {buffers}", flush=True)
        t = time.perf_counter()
        load(server.url, vectors, descriptions)
        print(
            f"loaded {args.n:,} explanations + vectors in {time.perf_counter() - t:.1f} s",
            flush=True,
        )
        t = time.perf_counter()
        build_index(server.url, args.maintenance_work_mem, args.hnsw_m, args.hnsw_ef_construction)
        m = args.hnsw_m or 16
        efc = args.hnsw_ef_construction or 64
        app = "" if args.hnsw_m is None and args.hnsw_ef_construction is None else ", NOT the app's"
        print(
            f"HNSW build (m={m}, ef_construction={efc}{app}, maintenance_work_mem "
            f"{args.maintenance_work_mem}): {time.perf_counter() - t:.1f} s",
            flush=True,
        )
        # the app's defaults first, then the recall/latency curve around them
        runs = [
            ("semantic", search.DEFAULT_EF_SEARCH),
            ("hybrid", search.HYBRID_EF_SEARCH),
            ("semantic", 100),
            ("semantic", 200),
            ("semantic", 800),
        ]
        results = asyncio.run(measure(server.url, queries, qvectors, exact, runs))
        for (mode, ef_search), (timings, recalls) in results.items():
            recall = f", recall@10 {statistics.mean(recalls):.3f}" if mode == "semantic" else ""
            print(
                f"{mode:8s} top-10, ef_search {ef_search}: p50 {percentile(timings, 50):.2f} ms, "
                f"p95 {percentile(timings, 95):.2f} ms{recall} ({len(timings)} queries)"
            )
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"total {time.perf_counter() - started:.0f} s")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """Unwind through `finally`, so Postgres is stopped when `timeout` ends the run.

    `timeout` signals the process and then its process group, so the second SIGTERM is
    ignored: it must not interrupt the clean-up.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    main()
