"""Benchmark `activation/upload-batch` through the API against a raw COPY of the same rows.

Starts a throwaway embedded Postgres and the web API as its own process (as `interpedia up`
runs it), registers a model, a source set and one feature through the domain functions,
then streams N activations (`--rows`, 100k by default, `--tokens` each) to
`/api/activation/upload-batch` over loopback HTTP in chunks (the body is JSON-encoded
before the clock starts: the client's encoding is not the API's cost). The
same rows, already built in memory, are then COPYed straight into `activations` for
another feature (`bulk.copy_activations`, what the upload itself calls, minus HTTP and
parsing). Prints both as rows/s (goal: upload >= 50% of raw COPY) and the web API
process's peak resident memory above its idle level during the upload, next to the
body's size: a streamed upload stays far below the body, one parsed whole holds it twice.

    .venv/bin/python bench/upload/run.py [--rows 100000] [--tokens 64]
"""

import argparse
import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil

from interpedia_db import bulk, migrate
from interpedia_db.connect import create_engine, create_sessionmaker
from interpedia_db.embedded import EmbeddedPostgres
from interpedia_db.models import Feature
from interpedia_testing.scratch import with_postgres
from interpedia_testing.servers import running_services
from interpedia_webapi import accounts, uploads

MODEL, SET = "bench-lab", "bench-res"
SOURCE = f"0-{SET}"
KEY = "bench-upload-admin-key-0123456789"
VOCAB = [f" tok{i}" for i in range(5000)]


def make_rows(n: int, tokens: int) -> tuple[list[list[str]], list[list[float]]]:
    rng = np.random.default_rng(0)
    words = rng.integers(0, len(VOCAB), (n, tokens))
    values = np.maximum(rng.normal(0, 2, (n, tokens)), 0).round(3)
    return [[VOCAB[w] for w in row] for row in words], values.tolist()


def body(tokens: list[list[str]], values: list[list[float]], index: int) -> Iterator[bytes]:
    """The request body in chunks of 1,000 rows."""
    yield json.dumps({"modelId": MODEL, "source": SOURCE, "index": index})[:-1].encode()
    yield b', "activations": ['
    step = 1000
    for start in range(0, len(tokens), step):
        part = ",".join(
            json.dumps({"tokens": t, "values": v})
            for t, v in zip(tokens[start : start + step], values[start : start + step], strict=True)
        )
        yield (("," if start else "") + part).encode()
    yield b"]}"


async def seed(url: str) -> None:
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker.begin() as session:
        await accounts.ensure_bootstrap_admin(session, KEY)
        admin = await accounts.user_for_key(session, KEY)
        assert admin is not None
        await uploads.create_model(session, admin, uploads.NewModel(MODEL, layers=1))
        await uploads.create_source_set(session, admin, MODEL, SET, None, None)
        session.add_all(Feature(model_id=MODEL, source_id=SOURCE, index=i) for i in range(2))
    await engine.dispose()


async def raw_copy(url: str, tokens: list[list[str]], values: list[list[float]]) -> float:
    rows = [
        uploads.activation_row(
            MODEL, SOURCE, 1, uploads.UploadedActivation(t, v), f"activations[{i}]"
        )
        for i, (t, v) in enumerate(zip(tokens, values, strict=True))
    ]
    engine = create_engine(url)
    sessionmaker = create_sessionmaker(engine)
    t0 = time.perf_counter()
    async with sessionmaker.begin() as session:
        await bulk.copy_activations(session, rows)
    elapsed = time.perf_counter() - t0
    await engine.dispose()
    return elapsed


def server_pid(port: int) -> int:
    for connection in psutil.net_connections(kind="tcp"):
        if connection.laddr and connection.laddr.port == port and connection.status == "LISTEN":
            return connection.pid
    raise RuntimeError(f"nothing listens on {port}")


class PeakRss(threading.Thread):
    """The process's largest resident set, sampled every 20 ms while running."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)


def bench(args: argparse.Namespace, root: Path, server: EmbeddedPostgres) -> None:
    """Upload the rows through the web API, then COPY the same rows, on `server`."""
    migrate.upgrade(server.url)
    asyncio.run(seed(server.url))
    tokens, values = make_rows(args.rows, args.tokens)
    encoded = list(body(tokens, values, 0))
    size = sum(len(chunk) for chunk in encoded)
    print(f"{args.rows:,} activations x {args.tokens} tokens, body {size / 1e6:.0f} MB")
    env = {"DATABASE_URL": server.url, "INTERPEDIA_WEBAPI_ADMIN_BOOTSTRAP_KEY": KEY}
    with running_services(["webapi"], env, root / "logs") as urls:
        pid = server_pid(int(urls["webapi"].rsplit(":", 1)[1]))
        peak = PeakRss(pid)
        idle = peak.peak
        peak.start()
        t0 = time.perf_counter()
        answer = httpx.post(
            urls["webapi"] + "/api/activation/upload-batch",
            content=iter(encoded),
            headers={"x-api-key": KEY, "content-type": "application/json"},
            timeout=600,
        )
        upload_s = time.perf_counter() - t0
        peak.done.set()
        peak.join()
    answer.raise_for_status()
    assert answer.json()["count"] == args.rows, answer.text
    copy_s = asyncio.run(raw_copy(server.url, tokens, values))
    upload_rate, copy_rate = args.rows / upload_s, args.rows / copy_s
    print(f"upload through the API: {upload_s:.1f} s = {upload_rate:,.0f} rows/s")
    print(f"raw COPY of the same rows: {copy_s:.1f} s = {copy_rate:,.0f} rows/s")
    print(f"upload / raw COPY = {upload_rate / copy_rate:.0%} (goal >= 50%)")
    print(
        f"web API peak RSS above idle during the upload: {(peak.peak - idle) / 1e6:.0f} MB "
        f"(body {size / 1e6:.0f} MB)"
    )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    with_postgres("upload", lambda root, server: bench(args, root, server))


if __name__ == "__main__":
    main()
