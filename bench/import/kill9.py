"""The import under `kill -9`: killed at random points, resumed, and checked row by row.

Generates an export (2,048 features, 5 activations each, explanations with 256-dim
embeddings, no manifest so the reader relies on the listing alone), then runs the
user's command, `interpedia import LOCATION`, in a subprocess against a throwaway
embedded Postgres and sends it SIGKILL at a random moment: uniformly within the time
the rest of the import should take, counted from when the process holds the job's run
lock (so every kill lands inside the import: downloading, copying, committing,
bookkeeping). After each kill it checks that no file was marked failed and that the job
reads `interrupted`, then runs the same command again. A round ends when a run finishes
by itself; then every row in the database is compared with the export (features,
activations, explanations, embeddings: exact counts, no duplicates, equal content) and
the tables are emptied for the next round: at most `--kills / --rounds` kills a round
(fewer when a run finishes before its kill), until `--kills` kills, each at a random moment
of what remains of the import (timed file by file in one uninterrupted run first).

    .venv/bin/python bench/import/kill9.py [--kills 20] [--rounds 4] [--features 2048] [--seed 0]
"""

import argparse
import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psycopg
from run import MODEL, SOURCE, generate

from interpedia_db import migrate
from interpedia_db.embedded import EmbeddedPostgres
from interpedia_formats.neuronpedia_export import sort_key
from interpedia_testing.scratch import with_postgres
from interpedia_webapi.feature_import import JOB_LOCK

TABLES = "import_jobs, explanation_embeddings, explanations, activations, features, sources"


def f32(values: list[float]) -> list[float]:
    return np.asarray(values, dtype=np.float32).tolist()


def expected_rows(export: Path) -> dict[str, dict]:
    """What the database must hold afterwards, keyed as it keys rows, from the export."""
    want: dict[str, dict] = {"features": {}, "activations": {}, "explanations": {}}
    for kind in want:
        for path in sorted((export / kind).glob("batch-*.jsonl.gz")):
            for line in gzip.decompress(path.read_bytes()).splitlines():
                r = json.loads(line)
                if kind == "features":
                    want[kind][int(r["index"])] = (
                        r["maxActApprox"],
                        r["pos_str"],
                        f32(r["pos_values"]),
                        f32(r["freq_hist_data_bar_heights"]),
                        r["topkCosSimIndices"],
                    )
                elif kind == "activations":
                    want[kind][r["id"]] = (
                        int(r["index"]),
                        r["tokens"],
                        f32(r["values"]),
                        r["maxValue"],
                        r["maxValueTokenIndex"],
                        r["dataIndex"],
                    )
                else:
                    want[kind][r["id"]] = (int(r["index"]), r["description"], f32(r["embedding"]))
    return want


def stored_rows(url: str) -> tuple[dict[str, dict], dict[str, int]]:
    """The same from the database, and the raw row counts (duplicates would show there)."""
    got: dict[str, dict] = {}
    where = {"model": MODEL, "source": SOURCE}
    with psycopg.connect(url) as conn:
        # real[] columns come back as the shortest decimals of float32s: compare as float32.
        got["features"] = {
            r[0]: (r[1], r[2], f32(r[3]), f32(r[4]), r[5])
            for r in conn.execute(
                "SELECT index, max_act, pos_str, pos_values, freq_hist_heights, "
                "topk_cos_sim_indices FROM features WHERE model_id = %(model)s "
                "AND source_id = %(source)s",
                where,
            )
        }
        got["activations"] = {
            r[0]: (r[1], r[2], f32(r[3]), *r[4:])
            for r in conn.execute(
                "SELECT external_id, index, tokens, values, max_value, max_value_token_index, "
                "data_index FROM activations WHERE model_id = %(model)s "
                "AND source_id = %(source)s",
                where,
            )
        }
        got["explanations"] = {
            r[0]: (r[1], r[2], f32(json.loads(r[3])))
            for r in conn.execute(
                "SELECT x.external_id, x.index, x.description, e.embedding::text "
                "FROM explanations x JOIN explanation_embeddings e ON e.explanation_id = x.id "
                "WHERE x.model_id = %(model)s AND x.source_id = %(source)s",
                where,
            )
        }
        counts = {
            table: conn.execute(
                f"SELECT count(*) FROM {table} WHERE model_id = %(model)s "
                "AND source_id = %(source)s",
                where,
            ).fetchone()[0]
            for table in ("features", "activations", "explanations")
        }
        counts["explanation_embeddings"] = conn.execute(
            "SELECT count(*) FROM explanation_embeddings"
        ).fetchone()[0]
    return got, counts


def lock_held(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = %s::oid AND objsubid = 2)",
        (JOB_LOCK,),
    ).fetchone()
    return bool(row[0])


def file_states(conn: psycopg.Connection) -> Counter:
    return Counter(
        dict(conn.execute("SELECT state, count(*) FROM import_files GROUP BY state").fetchall())
    )


def first_pending(conn: psycopg.Connection) -> str:
    """The file the import was on: the first in import order not yet imported, and its state."""
    rows = conn.execute("SELECT path, state FROM import_files WHERE state <> 'imported'").fetchall()
    if not rows:
        return "(bookkeeping after the last file)"
    path, state = min(rows, key=lambda r: sort_key(r[0]))
    return f"{path} ({state})"


def run(args: argparse.Namespace, root: Path, server: EmbeddedPostgres) -> None:
    migrate.upgrade(server.url)
    export = generate(root / "export", args.features, args.acts, args.tokens)
    (export / "manifest.json").unlink()
    want = expected_rows(export)
    total_rows = sum(len(v) for v in want.values())
    print(f"export: {total_rows:,} rows in {len(list(export.rglob('*.gz')))} batch files")
    env = os.environ | {"DATABASE_URL": server.url, "INTERPEDIA_DATA_DIR": str(root / "data")}
    command = [sys.executable, "-m", "interpedia_core.cli", "import", str(export)]
    rng = random.Random(args.seed)
    conn = psycopg.connect(server.url, autocommit=True)

    def start() -> tuple[subprocess.Popen, float | None]:
        """Start the command; wait until it holds the run lock (None: it ended first)."""
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while proc.poll() is None:
            if lock_held(conn):
                return proc, time.perf_counter()
            time.sleep(0.01)
        return proc, None

    def finish(proc: subprocess.Popen) -> None:
        out, err = proc.communicate()
        assert proc.returncode == 0 and b"verified: complete" in out, (out, err)

    # One uninterrupted import, timed file by file: when each file was in, counted from the
    # lock, so a resumed run's remaining time can be told from which files are in.
    proc, _ = start()
    (locked_at,) = conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
    finish(proc)
    (ended_at,) = conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
    full_s = float(ended_at - locked_at)
    timeline = conn.execute("SELECT path, extract(epoch FROM updated_at) FROM import_files")
    done_at = {path: float(at - locked_at) for path, at in timeline}
    print(f"uninterrupted: {full_s:.1f} s from lock to exit (load {os.getloadavg()[0]:.1f})")
    conn.execute(f"TRUNCATE {TABLES} CASCADE")

    per_round = -(-args.kills // args.rounds)
    kills, runs, round_no, at = 0, 0, 0, Counter()
    release_ms: list[float] = []
    while kills < args.kills:
        round_no += 1
        for _ in range(min(per_round, args.kills - kills)):
            runs += 1
            proc, locked = start()
            if locked is None:
                break  # it finished before its lock could be seen
            imported = [
                r[0] for r in conn.execute("SELECT path FROM import_files WHERE state = 'imported'")
            ]
            reached = max((done_at.get(p, 0.0) for p in imported), default=0.0)
            delay = rng.uniform(0, max(full_s - reached, 0.05 * full_s))
            while proc.poll() is None and time.perf_counter() < locked + delay:
                time.sleep(0.005)
            if proc.poll() is not None:
                break  # it finished first
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            states = file_states(conn)
            where = first_pending(conn)
            at["between files" if "bookkeeping" in where else where.rsplit("(", 1)[1][:-1]] += 1
            assert not states.get("failed"), f"kill {kills}: files marked failed: {states}"
            # The server drops the lock when it sees the connection close: then `interrupted`.
            killed_at = time.perf_counter()
            while lock_held(conn):
                assert time.perf_counter() - killed_at < 10, "the lock outlived its process"
                time.sleep(0.005)
            release_ms.append(1000 * (time.perf_counter() - killed_at))
            print(f"kill {kills:2d} (round {round_no}): {delay:5.2f} s after the lock, on {where}")
        runs += 1
        proc, _ = start()  # resume to the end
        finish(proc)
        got, counts = stored_rows(server.url)
        expected_counts = {k: len(v) for k, v in want.items()}
        expected_counts["explanation_embeddings"] = len(want["explanations"])
        assert counts == expected_counts, (counts, expected_counts)
        for kind in want:
            assert got[kind] == want[kind], f"{kind}: content differs from the export"
        print(
            f"round {round_no}: complete; {', '.join(f'{k} {v:,}' for k, v in counts.items())}: "
            "exact counts, no duplicates, content equal to the export"
        )
        conn.execute(f"TRUNCATE {TABLES} CASCADE")
    print(
        f"result: {kills} kills -9 over {round_no} rounds ({runs} runs of `interpedia "
        f"import`); the file in progress at the kill was {dict(at)}; no file ever marked "
        f"failed; the run lock was gone {max(release_ms):.0f} ms after the kill at most; "
        "every round complete and exact"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--features", type=int, default=2048)
    parser.add_argument("--acts", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with_postgres("kill9", lambda root, server: run(args, root, server))


if __name__ == "__main__":
    main()
