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
    layers: int = 12,
    dimension: int = 768,
    hook_name: str = "blocks.6.hook_resid_pre",
) -> Path:
    """An export of `n_features` features; returns the export's root folder."""
    rng = random.Random(seed)
    set_name = source_id.split("-", 1)[1]
    with ExportWriter(root, model_id, source_id) as writer:
        writer.write_release(
            NpSourceRelease(name=f"{model_id}-{set_name}", description="Test release")
        )
        writer.write_model(
            NpModel(id=model_id, displayName=model_id.upper(), layers=layers, dimension=dimension)
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
                    "hook_name": hook_name,
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


def core_eval_output(l0: float, explained_variance: float, ce_loss_score: float) -> dict:
    """A `core` eval output in SAE-Bench's schema, as the trainer stores it."""
    return {
        "eval_type_id": "core",
        "eval_config": {
            "dataset": "test corpus",
            "evaluation_set": {"n_contexts": 64, "n_ce_contexts": 16},
        },
        "eval_result_metrics": {
            "reconstruction_quality": {"explained_variance": explained_variance, "mse": 1.5},
            "sparsity": {"l0": l0, "l1": 40.0},
            "model_performance_preservation": {
                "ce_loss_score": ce_loss_score,
                "ce_loss_delta": 0.2,
                "ce_loss_with_sae": 3.2,
                "ce_loss_without_sae": 3.0,
                "ce_loss_with_ablation": 9.0,
            },
            "model_behavior_preservation": {"kl_div_score": 0.9},
            "misc_metrics": {"frac_dead": 0.25, "frac_dense": 0.01},
            "token_stats": {
                "total_tokens_eval_reconstruction": 2032,
                "total_tokens_eval_sparsity_variance": 8128,
            },
        },
        "eval_result_unstructured": {
            "feature_density_histogram": {
                "log10_density_edges": [-6 + 0.5 * k for k in range(13)],
                "counts": [0, 1, 2, 4, 6, 8, 7, 5, 3, 2, 1, 1],
                "dead": 10,
            }
        },
    }


def absorption_eval_output(fraction: float) -> dict:
    """An `absorption_first_letter` eval output in SAE-Bench's schema."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return {
        "eval_type_id": "absorption_first_letter",
        "eval_config": {"n_words": 1500, "min_feats_for_eval": 20},
        "eval_result_metrics": {
            "mean": {
                "mean_absorption_fraction_score": fraction,
                "mean_full_absorption_score": fraction / 2,
                "mean_num_split_features": 1.2,
            }
        },
        "eval_result_details": [
            {
                "first_letter": c,
                "mean_absorption_fraction": fraction * (k % 3) / 2,
                "full_absorption_rate": 0.0,
                "num_full_absorption": k % 2,
                "num_probe_true_positives": 10,
                "num_split_features": 1,
            }
            for k, c in enumerate(letters)
        ],
        "eval_result_unstructured": {"letters_evaluated": 26, "enough_letters": True},
    }


async def store_feature_map_and_evals(
    sessionmaker, model_id: str, source_id: str, n_features: int
) -> None:
    """Map coordinates for every feature of a source (two clusters: even and odd indices,
    as the test export's explanations alternate cats and dogs) and two evaluations."""
    from sqlalchemy import update

    from interpedia_db.models import Eval, Feature, Source

    async with sessionmaker.begin() as session:
        for i in range(n_features):
            await session.execute(
                update(Feature)
                .where(
                    Feature.model_id == model_id,
                    Feature.source_id == source_id,
                    Feature.index == i,
                )
                .values(
                    umap_x=(i % 2) * 10.0 + (i % 5) * 0.4,
                    umap_y=(i // 2) * 0.5,
                    umap_cluster=i % 2,
                    umap_log_feature_sparsity=-3.0 + (i % 10) * 0.1,
                )
            )
        await session.execute(
            update(Source)
            .where(Source.model_id == model_id, Source.id == source_id)
            .values(has_umap=True)
        )
        for output in (core_eval_output(32.0, 0.87, 0.95), absorption_eval_output(0.2)):
            session.add(
                Eval(
                    model_id=model_id,
                    source_id=source_id,
                    type_name=output["eval_type_id"],
                    output=output,
                )
            )


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


def add_model(database_url: str, model_id: str) -> None:
    """A models row (pages 404 for a model the platform does not know)."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO models (id, display_name, layers, d_model) VALUES (%s, %s, 2, 64) "
            "ON CONFLICT DO NOTHING",
            (model_id, model_id),
        )


def transcoder_run(database_url: str, model_id: str, name: str, total_tokens: int) -> int:
    """A queued transcoder run, as `train --architecture transcoder --queue` records it."""
    import psycopg
    from psycopg.types.json import Jsonb

    with psycopg.connect(database_url) as conn:
        (run_id,) = conn.execute(
            "INSERT INTO training_runs (name, model_id, hook_name, architecture, config) "
            "VALUES (%s, %s, 'blocks.*.mlp.hook_in', 'transcoder', %s) RETURNING id",
            (name, model_id, Jsonb({"total_tokens": total_tokens})),
        ).fetchone()
    return run_id


def record_transcoder_step(
    database_url: str,
    run_id: int,
    step: int,
    tokens: int,
    layers: dict[int, dict[str, float]],
    status: str = "running",
) -> None:
    """One step of the run's metrics as the recorded run writes them (per layer under
    `layer_{i}/`, their means under the SAE run's names), and the run's status."""
    import psycopg
    from psycopg.types.json import Jsonb

    values: dict[str, float] = {"tokens": tokens}
    for name in ("fvu", "l0", "dead_fraction"):
        values[name] = sum(m[name] for m in layers.values()) / len(layers)
        values |= {f"layer_{layer}/{name}": m[name] for layer, m in layers.items()}
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO training_metrics (run_id, step, n_tokens, values) VALUES (%s, %s, %s, %s)",
            (run_id, step, tokens, Jsonb(values)),
        )
        conn.execute("UPDATE training_runs SET status = %s WHERE id = %s", (status, run_id))


def register_transcoder_sources(
    database_url: str, model_id: str, name: str, layers: int, with_dashboards: int
) -> None:
    """The set registered (a source per layer), the first `with_dashboards` layers with
    their dashboards computed."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO source_sets (model_id, name, type) VALUES (%s, %s, 'transcoder') "
            "ON CONFLICT DO NOTHING",
            (model_id, name),
        )
        for layer in range(layers):
            conn.execute(
                "INSERT INTO sources (model_id, id, set_name, hook_name, layer, architecture, "
                "d_sae, has_dashboards) VALUES (%s, %s, %s, %s, %s, 'transcoder', 32, %s) "
                "ON CONFLICT (model_id, id) DO UPDATE SET has_dashboards = excluded.has_dashboards",
                (
                    model_id,
                    f"{layer}-{name}",
                    name,
                    f"blocks.{layer}.mlp.hook_in",
                    layer,
                    layer < with_dashboards,
                ),
            )
