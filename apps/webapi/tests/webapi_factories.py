"""Test data: small Neuronpedia-format exports and database rows."""

import gzip
import json
import random
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

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

WORDS = [" the", " cat", " sat", " on", " a", " mat", " and", " dog", " ran", " home", ".", " I"]


def write_export(
    root: Path,
    model_id: str = "gpt2-small",
    source_id: str = "6-res-jb",
    *,
    n_features: int = 50,
    acts_per_feature: int = 3,
    tokens_per_act: int = 16,
    embedding_dims: int = 256,
    seed: int = 0,
) -> Path:
    """An export of `n_features` features; returns the export's root folder."""
    rng = random.Random(seed)
    set_name = source_id.split("-", 1)[1]
    with ExportWriter(root, model_id, source_id) as writer:
        writer.write_release(
            NpSourceRelease(name=f"{model_id}-{set_name}", description="Test release")
        )
        writer.write_model(
            NpModel(id=model_id, displayName=model_id.upper(), layers=12, dimension=768)
        )
        writer.write_sourceset(
            NpSourceSet(
                modelId=model_id,
                name=set_name,
                releaseName=f"{model_id}-{set_name}",
                description="residual stream SAEs",
            )
        )
        writer.write_source(
            NpSource(
                modelId=model_id,
                id=source_id,
                setName=set_name,
                saelensConfig={
                    "d_sae": n_features,
                    "hook_name": "blocks.6.hook_resid_pre",
                    "architecture": "standard",
                },
            )
        )
        for i in range(n_features):
            writer.write_feature(
                NpNeuron(
                    modelId=model_id,
                    layer=source_id,
                    index=i,
                    maxActApprox=5.0 + i % 7,
                    frac_nonzero=0.001 * (1 + i % 10),
                    pos_str=[" cats", " kitten", " feline"],
                    pos_values=[1.2, 0.9, 0.7],
                    neg_str=[" dogs", " car"],
                    neg_values=[-0.8, -0.5],
                    freq_hist_data_bar_heights=[rng.randint(1, 100) for _ in range(20)],
                    freq_hist_data_bar_values=[0.25 * k for k in range(20)],
                    logits_hist_data_bar_heights=[rng.randint(1, 100) for _ in range(20)],
                    logits_hist_data_bar_values=[-1 + 0.1 * k for k in range(20)],
                    topkCosSimIndices=[i, (i + 1) % n_features, (i + 2) % n_features],
                    topkCosSimValues=[1.0, 0.4, 0.3],
                )
            )
            for j in range(acts_per_feature):
                tokens = [rng.choice(WORDS) for _ in range(tokens_per_act)]
                values = [round(max(0.0, rng.gauss(0, 2)), 3) for _ in tokens]
                top = max(range(len(values)), key=values.__getitem__)
                writer.write_activation(
                    NpActivation(
                        id=f"{source_id}-{i}-{j}",
                        modelId=model_id,
                        layer=source_id,
                        index=i,
                        tokens=tokens,
                        values=values,
                        maxValue=values[top],
                        maxValueTokenIndex=top,
                        minValue=min(values),
                        dataIndex=j,
                        dataSource="test",
                        binMin=-1 if j == 0 else 0.5,
                        binMax=-1 if j == 0 else 2.0,
                        binContains=None if j == 0 else 0.1,
                    )
                )
            vector = [rng.gauss(0, 1) for _ in range(embedding_dims)]
            writer.write_explanation(
                NpExplanation(
                    id=f"exp-{source_id}-{i}",
                    modelId=model_id,
                    layer=source_id,
                    index=i,
                    description=("mentions of cats" if i % 2 == 0 else "dogs running home")
                    + f" #{i}",
                    typeName="oai_token-act-pair",
                    explanationModelName="gpt-4o-mini",
                    embedding=vector,
                )
            )
    return root / model_id / source_id


def rewrite_rows(path: Path, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    """Rewrite the rows of one `.jsonl.gz` batch file."""
    rows = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    path.write_bytes(gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in edit(rows))))


def as_neuronpedia_dump(export: Path) -> Path:
    """The same rows as Neuronpedia's exporter writes them: no manifest, and each
    explanation's embedding as pgvector text (`json.dumps` of what psycopg2 returns)."""
    (export / "manifest.json").unlink(missing_ok=True)

    def to_text(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for row in rows:
            if row.get("embedding") is not None:
                row["embedding"] = "[" + ",".join(map(str, row["embedding"])) + "]"
        return rows

    for batch in (export / "explanations").glob("batch-*.jsonl.gz"):
        rewrite_rows(batch, to_text)
    return export


# Runs one import in its own process: argv = database URL, import id, work dir, delay per file.
IMPORT_RUNNER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from interpedia_db.connect import create_engine, create_sessionmaker
    from interpedia_webapi import feature_import

    async def main():
        engine = create_engine(sys.argv[1])
        sessionmaker = create_sessionmaker(engine)
        await feature_import.run_import(sessionmaker, int(sys.argv[2]), work_dir=Path(sys.argv[3]),
                                        delay_between_files_s=float(sys.argv[4]))
        await engine.dispose()

    asyncio.run(main())
""")
