"""Benchmark the admin import against a raw COPY of the same rows, in the same run.

Generates a Neuronpedia-format export the size of one gpt2-small layer (24,576
features, 25 activations each by default), imports it with
`feature_import.run_import` (copy and checksum each file, streamed gunzip + parse,
COPY, per-file state), then COPYs the same rows (features, activations,
explanations, embeddings), already parsed and in memory, into the same tables as
another source (same indexes, keys and foreign keys). Prints both as rows/s; the
goal is import >= 50% of raw COPY. Two raw baselines: asyncpg's binary COPY of the
parsed rows, and pre-encoded COPY text (server work only, the strictest). It also
times the import's own parse + encode of the same files with no database, so the
output shows how the import's time splits between this process and the server.

    .venv/bin/python bench/import/run.py [--features 24576] [--acts 25] [--tokens 64]
"""

import argparse
import asyncio
import gzip
import json
import time
from pathlib import Path

import numpy as np
from pgvector.asyncpg import register_vector

from interpedia_db import bulk, migrate
from interpedia_db.connect import create_engine, create_sessionmaker
from interpedia_db.embedded import EmbeddedPostgres
from interpedia_db.embeddings import NEURONPEDIA_EMBEDDING_MODEL
from interpedia_formats.neuronpedia_export import (
    ExportWriter,
    NpActivation,
    NpExplanation,
    NpModel,
    NpNeuron,
    NpSource,
    NpSourceRelease,
    NpSourceSet,
)
from interpedia_testing.scratch import with_postgres
from interpedia_webapi import feature_import

MODEL, SOURCE = "gpt2-small", "6-res-jb"
VOCAB = [f" tok{i}" for i in range(5000)]


def generate(root: Path, n_features: int, acts: int, tokens: int) -> Path:
    rng = np.random.default_rng(0)
    with ExportWriter(root, MODEL, SOURCE) as writer:
        writer.write_release(NpSourceRelease(name="res-jb"))
        writer.write_model(NpModel(id=MODEL, displayName="GPT-2 Small", layers=12, dimension=768))
        writer.write_sourceset(NpSourceSet(modelId=MODEL, name="res-jb", releaseName="res-jb"))
        writer.write_source(
            NpSource(
                modelId=MODEL,
                id=SOURCE,
                setName="res-jb",
                saelensConfig={"d_sae": n_features, "hook_name": "blocks.6.hook_resid_pre"},
            )
        )
        for i in range(n_features):
            writer.write_feature(
                NpNeuron(
                    modelId=MODEL,
                    layer=SOURCE,
                    index=i,
                    maxActApprox=5.0,
                    frac_nonzero=0.001,
                    pos_str=VOCAB[:10],
                    pos_values=rng.random(10).round(3).tolist(),
                    neg_str=VOCAB[10:20],
                    neg_values=(-rng.random(10)).round(3).tolist(),
                    freq_hist_data_bar_heights=rng.integers(0, 100, 50).tolist(),
                    freq_hist_data_bar_values=np.linspace(0, 5, 50).round(3).tolist(),
                    logits_hist_data_bar_heights=rng.integers(0, 100, 50).tolist(),
                    logits_hist_data_bar_values=np.linspace(-1, 1, 50).round(3).tolist(),
                    topkCosSimIndices=list(range(i, i + 10)),
                    topkCosSimValues=rng.random(10).round(3).tolist(),
                )
            )
            values = np.maximum(rng.normal(0, 2, (acts, tokens)), 0).round(3)
            words = rng.integers(0, len(VOCAB), (acts, tokens))
            for j in range(acts):
                row = values[j].tolist()
                top = int(values[j].argmax())
                writer.write_activation(
                    NpActivation(
                        id=f"{i}-{j}",
                        modelId=MODEL,
                        layer=SOURCE,
                        index=i,
                        tokens=[VOCAB[w] for w in words[j]],
                        values=row,
                        maxValue=row[top],
                        maxValueTokenIndex=top,
                        minValue=0.0,
                        dataIndex=j,
                        binMin=-1,
                        binMax=-1,
                    )
                )
            writer.write_explanation(
                NpExplanation(
                    id=f"e{i}",
                    modelId=MODEL,
                    layer=SOURCE,
                    index=i,
                    description=f"feature {i}",
                    typeName="oai_token-act-pair",
                    embedding=rng.normal(0, 1, 256).round(5).tolist(),
                )
            )
    return root / MODEL / SOURCE


def parsed_rows(export: Path) -> dict[str, list[tuple]]:
    """Every row of the export as the raw COPY gets it: parsed, in memory, per table."""
    rows: dict[str, list[tuple]] = {
        "features": [],
        "activations": [],
        "explanations": [],
        "explanation_embeddings": [],
    }
    for kind in ("features", "activations", "explanations"):
        for path in sorted((export / kind).glob("batch-*.jsonl.gz")):
            with gzip.open(path, "rt") as stream:
                for line in stream:
                    r = json.loads(line)
                    i = int(r["index"])
                    if kind == "features":
                        rows[kind].append(
                            (
                                MODEL,
                                SOURCE,
                                i,
                                r["maxActApprox"],
                                r["frac_nonzero"],
                                r["pos_str"],
                                r["pos_values"],
                                r["neg_str"],
                                r["neg_values"],
                                r["freq_hist_data_bar_heights"],
                                r["freq_hist_data_bar_values"],
                                r["logits_hist_data_bar_heights"],
                                r["logits_hist_data_bar_values"],
                                None,
                                None,
                                10.0,
                                r["topkCosSimIndices"],
                                r["topkCosSimValues"],
                            )
                        )
                    elif kind == "activations":
                        rows[kind].append(
                            (
                                MODEL,
                                SOURCE,
                                i,
                                r["tokens"],
                                r["values"],
                                r["maxValue"],
                                r["maxValueTokenIndex"],
                                r["minValue"],
                                r["binMin"],
                                r["binMax"],
                                r["binContains"],
                                r["dataIndex"],
                                r["dataSource"],
                                r["id"],
                            )
                        )
                    else:
                        n = len(rows["explanations"]) + 1
                        rows[kind].append(
                            (
                                n,
                                MODEL,
                                SOURCE,
                                i,
                                r["description"],
                                r["typeName"],
                                r["explanationModelName"],
                                r["id"],
                            )
                        )
                        rows["explanation_embeddings"].append(
                            (n, NEURONPEDIA_EMBEDDING_MODEL, r["embedding"])
                        )
    return rows


RAW_COLUMNS = {
    "features": list(feature_import.FEATURE_COLUMNS),
    "activations": list(bulk.ACTIVATION_COLUMNS),
    "explanations": [
        "id",
        "model_id",
        "source_id",
        "index",
        "description",
        "type_name",
        "explanation_model_name",
        "external_id",
    ],
    "explanation_embeddings": ["explanation_id", "embedding_model", "embedding"],
}


RAW_SOURCE = SOURCE + "-raw"


async def _replay(chunks: list[bytes]):
    for chunk in chunks:
        yield chunk


async def raw_copy(engine, rows: dict[str, list[tuple]], suffix: str, encoded: bool) -> float:
    """COPY every row into the same tables (same indexes and keys), as another source.

    encoded=True: the COPY text is built before the clock starts, so only the
    server's work is timed (the strictest baseline); False: asyncpg's binary COPY
    of the parsed rows (what a Python program would naively do).
    """
    raw_source = RAW_SOURCE + suffix
    async with engine.begin() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        await raw.execute(
            "INSERT INTO sources (model_id, id, set_name, hook_name, layer, architecture, d_sae) "
            "SELECT model_id, $1, set_name, hook_name, layer, architecture, d_sae "
            "FROM sources WHERE model_id = $2 AND id = $3",
            raw_source,
            MODEL,
            SOURCE,
        )
        await register_vector(raw)
        first_id = 1 + await raw.fetchval("SELECT coalesce(max(id), 0) FROM explanations")
        prefix = "raw" + suffix + "-"
        total = 0.0
        for table, records in rows.items():
            if table == "explanation_embeddings":
                records = [(first_id + n, m, e) for n, m, e in records]
            elif table == "explanations":
                records = [
                    (first_id + r[0], r[1], raw_source, *r[3:7], prefix + r[7]) for r in records
                ]
            elif table == "activations":
                records = [(r[0], raw_source, *r[2:13], prefix + r[13]) for r in records]
            else:
                records = [(r[0], raw_source, *r[2:]) for r in records]
            if encoded:
                if table == "explanation_embeddings":  # vectors as pgvector's text form
                    records = [(i, m, "[" + ",".join(map(repr, e)) + "]") for i, m, e in records]
                data = list(bulk.chunks(iter(records)))
                t0 = time.perf_counter()
                await raw.copy_to_table(
                    table, source=_replay(data), columns=RAW_COLUMNS[table], format="text"
                )
            else:
                t0 = time.perf_counter()
                await raw.copy_records_to_table(table, records=records, columns=RAW_COLUMNS[table])
            took = time.perf_counter() - t0
            print(
                f"  raw COPY ({'pre-encoded text' if encoded else 'asyncpg binary'}) "
                f"{table}: {len(records):,} rows in {took:.2f} s"
            )
            total += took
        return total


def client_side_seconds(export: Path, job: object) -> float:
    """The import's parse + COPY-text encoding of every row file, with no database.

    The same record functions and encoder `run_import` streams into COPY; the rows go
    nowhere. Import time minus this is roughly what the import waits on the server.
    """
    make = {
        "features": feature_import.feature_records,
        "activations": feature_import.activation_records,
        "explanations": feature_import.explanation_records,
    }
    t0 = time.perf_counter()
    for kind, records in make.items():
        for path in sorted((export / kind).glob("batch-*.jsonl.gz")):
            with path.open("rb") as stream:
                name = f"{kind}/{path.name}"
                for _ in bulk.chunks(records(stream, name, job, [0])):
                    pass
    return time.perf_counter() - t0


async def bench(args: argparse.Namespace, root: Path, server: EmbeddedPostgres) -> None:
    migrate.upgrade(server.url)
    engine = create_engine(server.url)
    sessionmaker = create_sessionmaker(engine)

    t0 = time.perf_counter()
    export = generate(root / "export", args.features, args.acts, args.tokens)
    size = sum(p.stat().st_size for p in export.rglob("*") if p.is_file())
    print(f"generated {export} ({size / 1e6:.0f} MB gz) in {time.perf_counter() - t0:.1f} s")

    async with sessionmaker.begin() as session:
        job = await feature_import.start_import(session, str(export))
    t0 = time.perf_counter()
    done = await feature_import.run_import(sessionmaker, job.id, work_dir=root / "work")
    import_s = time.perf_counter() - t0
    n_acts = args.features * args.acts
    print(
        f"import: {done.status}, {done.files_done} files in {import_s:.1f} s "
        f"({n_acts:,} activations, {args.features:,} features, explanations, embeddings)"
    )
    async with sessionmaker() as session:
        report = await feature_import.verify_import(session, job.id)
    print(f"verify: ok={report.ok} {report.counts}")
    client_s = client_side_seconds(export, job)
    print(
        f"  of which parse + COPY-text encoding in this process (timed alone, no "
        f"database): {client_s:.1f} s; the rest, {import_s - client_s:.1f} s, is waiting "
        "on the server and per-file bookkeeping"
    )

    rows = parsed_rows(export)
    n_rows = sum(len(r) for r in rows.values())
    rate = n_rows / import_s
    print(f"import: {n_rows:,} rows in {import_s:.1f} s = {rate:,.0f} rows/s")
    for suffix, encoded in (("-b", False), ("-t", True)):
        raw_s = await raw_copy(engine, rows, suffix, encoded)
        raw_rate = n_rows / raw_s
        how = "pre-encoded text, server only" if encoded else "asyncpg binary records"
        print(
            f"raw COPY ({how}) of the same {n_rows:,} rows into the same tables: "
            f"{raw_s:.1f} s = {raw_rate:,.0f} rows/s; import = {100 * rate / raw_rate:.0f}% "
            "(goal >= 50%)"
        )
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=24_576)
    parser.add_argument("--acts", type=int, default=25)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    with_postgres("import", lambda root, server: asyncio.run(bench(args, root, server)))


if __name__ == "__main__":
    main()
