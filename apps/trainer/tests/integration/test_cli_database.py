"""The trainer CLI against a real database, run as subprocesses the way the demo runs it.

`train --register` → `dashboards --source` → `runs` / `runs --compare` → `export`, on the
tiny random model, plus bad input that must fail with one `error:` line and exit code 2.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from interpedia_core.errors import InvalidInput
from interpedia_db.embeddings import NEURONPEDIA_EMBEDDING_MODEL
from interpedia_db.models import (
    Activation,
    Eval,
    Explanation,
    ExplanationEmbedding,
    Feature,
    Source,
    TrainingMetric,
    TrainingRun,
)
from interpedia_formats.neuronpedia_export import read_file_rows, read_manifest
from interpedia_trainer import runs
from interpedia_trainer.cli import commands

MODEL = "tiny-random"
HOOK = "blocks.1.hook_resid_post"
SOURCE = "1-res-cli"
INTERPEDIA = Path(sys.executable).parent / "interpedia"


def interpedia(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INTERPEDIA), *args], env=env, capture_output=True, text=True, timeout=300
    )


def ok(env: dict[str, str], *args: str) -> str:
    result = interpedia(env, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def env(database_url: str, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("cli-db")
    return os.environ | {
        "DATABASE_URL": database_url,
        "INTERPEDIA_DATA_DIR": str(root / "data"),
        "INTERPEDIA_CACHE_DIR": str(root / "cache"),
        "INTERPEDIA_TRAINER_CORPUS": str(tiny_corpus),
        "COLUMNS": "250",  # rich tables wrap to the terminal width otherwise
    }


@pytest.fixture(scope="module")
def trained(env: dict, tiny_train_flags: list[str], tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("saes") / SOURCE
    flags = [*tiny_train_flags, "--total-tokens", str(128 * 12), "--architecture", "topk"]
    stdout = ok(env, "train", *flags, "--out", str(out), "--register", "res-cli")
    assert f"registered source {MODEL}/{SOURCE}" in stdout
    return out


@pytest.fixture(scope="module")
def with_dashboards(env: dict, trained: Path) -> str:
    args = ["--model", MODEL, "--source", SOURCE, "--n-prompts", "8", "--context-size", "32"]
    return ok(env, "dashboards", *args)


async def _run_of_source(session) -> TrainingRun:
    return (
        await session.execute(
            select(TrainingRun).where(
                TrainingRun.model_id == MODEL, TrainingRun.source_id == SOURCE
            )
        )
    ).scalar_one()


async def test_train_register_records_the_run_and_registers_the_source(
    trained, db_sessionmaker
) -> None:
    async with db_sessionmaker() as session:
        run = await _run_of_source(session)
        metrics = (
            (
                await session.execute(
                    select(TrainingMetric)
                    .where(TrainingMetric.run_id == run.id)
                    .order_by(TrainingMetric.step)
                )
            )
            .scalars()
            .all()
        )
        source = await session.get(Source, (MODEL, SOURCE))
    assert run.status == "succeeded" and run.name == SOURCE and run.error is None
    assert run.started_at is not None and run.finished_at >= run.started_at
    assert (
        run.config["d_sae"] == 64 and run.config["k"] == 4 and run.config["source_set"] == "res-cli"
    )
    assert run.final_metrics["eval/l0"] == pytest.approx(4, abs=0.01)
    # step 10 is a logged step; step 12 is the last one, merged with the final metrics
    assert [m.step for m in metrics] == [10, 12] and metrics[-1].n_tokens == 128 * 12
    assert {"loss", "eval/explained_variance"} <= set(metrics[-1].values)
    assert source.weights_uri == str(trained.absolute()) and source.d_sae == 64
    assert (source.layer, source.hook_name, source.has_dashboards) == (1, HOOK, False)


async def test_dashboards_of_a_source_go_to_the_database(with_dashboards, db_sessionmaker) -> None:
    assert f"stored 64 dashboards of {MODEL}/{SOURCE}" in with_dashboards
    async with db_sessionmaker() as session:
        source = await session.get(Source, (MODEL, SOURCE), populate_existing=True)
        n_features = await session.scalar(
            select(func.count()).select_from(Feature).where(Feature.source_id == SOURCE)
        )
        top = (
            await session.execute(
                select(Feature)
                .where(Feature.source_id == SOURCE)
                .order_by(Feature.max_act.desc())
                .limit(1)
            )
        ).scalar_one()
        n_examples = await session.scalar(
            select(func.count()).select_from(Activation).where(Activation.source_id == SOURCE)
        )
    assert source.has_dashboards and (source.num_prompts, source.num_tokens_in_prompt) == (8, 32)
    assert n_features == 64 and top.max_act > 0 and len(top.pos_str) == 10
    assert n_examples > 0 and f"{n_examples} examples" in with_dashboards


async def test_map_and_evaluations_from_the_cli(
    env, trained, with_dashboards, db_sessionmaker, tmp_path
) -> None:
    # `dashboards` queued the map; queueing it again is a no-op that says so.
    assert "its feature map is queued" in with_dashboards
    where = ["--model", MODEL, "--source", SOURCE]
    assert "already queued" in ok(env, "umap", *where, "--queue")
    assert f"stored the feature map of {MODEL}/{SOURCE}: 64 features" in ok(
        env, "umap", *where, "--seed", "0"
    )
    small = env | {
        "INTERPEDIA_TRAINER_EVAL_CONTEXTS": "8",
        "INTERPEDIA_TRAINER_EVAL_CE_CONTEXTS": "2",
        "INTERPEDIA_TRAINER_EVAL_CONTEXT_SIZE": "32",
    }
    printed = ok(small, "evaluate", *where, "--kind", "core")
    assert "core:" in printed and "sparsity/l0" in printed
    async with db_sessionmaker() as session:
        source = await session.get(Source, (MODEL, SOURCE), populate_existing=True)
        unmapped = await session.scalar(
            select(func.count())
            .select_from(Feature)
            .where(Feature.source_id == SOURCE, Feature.umap_x.is_(None))
        )
        core = await session.scalar(
            select(Eval.output).where(Eval.source_id == SOURCE, Eval.type_name == "core")
        )
    assert source.has_umap and unmapped == 0
    assert core["eval_config"]["evaluation_set"]["n_contexts"] == 8

    # Any SAELens folder, without the database: the same numbers, written as JSON.
    out = tmp_path / "evals.json"
    folder = ["--model", MODEL, "--sae", str(trained), "--kind", "core", "--out", str(out)]
    ok(small | {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, "evaluate", *folder)
    [offline] = json.loads(out.read_text())
    assert offline["eval_result_metrics"]["sparsity"] == core["eval_result_metrics"]["sparsity"]


async def test_runs_lists_and_compares(env, trained, db_sessionmaker) -> None:
    async with db_sessionmaker.begin() as session:
        first = await _run_of_source(session)
        other = await runs.create_run(
            session, {**first.config, "k": 8, "lr": 0.001, "source_set": "res-other"}
        )
        await runs.mark_run(session, other.id, "failed", error="out of memory")
    table = ok(env, "runs")
    assert f"{first.id} " in table and SOURCE in table and "succeeded" in table
    assert "1-res-other" in table and "failed" in table and "1,536" in table

    listed = json.loads(ok(env, "runs", str(first.id), "--json"))
    assert [r["id"] for r in listed] == [first.id] and listed[0]["n_tokens"] == 128 * 12

    compared = json.loads(ok(env, "runs", "--compare", str(first.id), str(other.id), "--json"))
    differences = compared["config_differences"]
    assert differences["k"] == [4, 8] and differences["source_set"] == ["res-cli", "res-other"]
    assert "d_sae" not in differences
    assert compared["final_metrics"]["eval/l0"][1] is None

    shown = ok(env, "runs", "--compare", str(first.id), str(other.id))
    assert "config differences" in shown and "source_set" in shown and "res-other" in shown


async def test_export_writes_what_the_reader_reads(
    env, with_dashboards, db_sessionmaker, tmp_path
) -> None:
    async with db_sessionmaker.begin() as session:
        union, numbers = (
            Explanation(
                model_id=MODEL, source_id=SOURCE, index=index, description=text, type_name="t"
            )
            for index, text in ((0, "the word union"), (5, "numbers"))
        )
        session.add_all([union, numbers])
        await session.flush()
        # an imported Neuronpedia vector goes out again; a local-model one has no field there
        session.add_all(
            [
                ExplanationEmbedding(
                    explanation_id=union.id,
                    embedding_model=NEURONPEDIA_EMBEDDING_MODEL,
                    embedding=[0.25] * 256,
                ),
                ExplanationEmbedding(
                    explanation_id=numbers.id,
                    embedding_model="all-MiniLM-L6-v2",
                    embedding=[0.5] * 384,
                ),
            ]
        )
    async with db_sessionmaker() as session:
        n_examples = await session.scalar(
            select(func.count()).select_from(Activation).where(Activation.source_id == SOURCE)
        )
        feature_3 = await session.get(Feature, (MODEL, SOURCE, 3))
    stdout = ok(env, "export", "--model", MODEL, "--source", SOURCE, "--out", str(tmp_path))
    root = tmp_path / MODEL / SOURCE
    assert str(root) in stdout

    manifest = read_manifest((root / "manifest.json").read_bytes())
    rows: dict[str, list] = {}
    for entry in manifest.files:
        rows.setdefault(entry.path.split("/")[0], []).extend(
            row for _, row in read_file_rows(root, entry.path)
        )
    assert len(rows["features"]) == 64 and len(rows["activations"]) == n_examples
    embeddings = {r.description: r.embedding for r in rows["explanations"]}
    assert embeddings == {"numbers": None, "the word union": [0.25] * 256}
    [source] = rows["source.jsonl"]
    assert source.saelensConfig["hook_name"] == HOOK and source.hasDashboards
    [model] = rows["model.jsonl"]
    assert (model.id, model.layers, model.dimension) == (MODEL, 2, 64)
    exported_3 = next(r for r in rows["features"] if r.index_int == 3)
    assert exported_3.maxActApprox == feature_3.max_act and exported_3.pos_str == feature_3.pos_str
    ids = [r.id for r in rows["activations"]]
    assert len(set(ids)) == len(ids)  # each example keeps its own id for re-import


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dashboards", "--model", MODEL, "--source", "9-nope"], "no source 9-nope of model"),
        (
            [
                "train",
                "--model",
                MODEL,
                "--d-sae",
                "16",
                "--k",
                "32",
                "--out",
                "OUT",
                "--register",
                "x",
            ],
            "cannot exceed d_sae (16)",
        ),
        (["train", "--model", MODEL, "--corpus", "EMPTY", "--out", "OUT"], "holds no .txt"),
        (["umap", "--model", MODEL, "--source", "9-nope"], "no source 9-nope"),
        (
            ["evaluate", "--model", MODEL, "--source", "1-x", "--kind", "bogus"],
            "evaluation kinds are",
        ),
        (["evaluate", "--model", MODEL], "give either --source SOURCE_ID or --sae DIR"),
        (["evaluate", "--model", MODEL, "--sae", "EMPTY"], "is not an SAE folder (no cfg.json)"),
        (["evaluate", "--model", MODEL, "--sae", "EMPTY", "--queue"], "--queue is for --source"),
    ],
)
async def test_bad_input_fails_with_one_line_before_any_work(
    env, db_sessionmaker, tmp_path, args, message
) -> None:
    (tmp_path / "empty").mkdir()
    paths = {"EMPTY": str(tmp_path / "empty"), "OUT": str(tmp_path / "out")}
    args = [paths.get(a, a) for a in args]
    async with db_sessionmaker() as session:
        before = await session.scalar(select(func.count()).select_from(TrainingRun))
    result = interpedia(env, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    async with db_sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(TrainingRun)) == before


@pytest.mark.parametrize(
    "args",
    [[], ["--sae", "d", "--source", "s"], ["--sae", "d"], ["--source", "s", "--out", "f.json"]],
)
def test_dashboards_takes_either_a_source_or_an_sae_folder(args) -> None:
    result = CliRunner().invoke(commands, ["dashboards", *args])
    assert isinstance(result.exception, InvalidInput) and "--s" in str(result.exception)
