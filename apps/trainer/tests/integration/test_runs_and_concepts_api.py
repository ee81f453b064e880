"""Runs and concept scores through the trainer's HTTP API, on the real database.

Runs are listed, shown with their time series and compared as `interpedia runs` does.
A concept-scores request is validated, enqueued, run (the task function with a stand-in
context carrying the queued job's id) on the tiny random model, and its table is read
back through `GET /v1/jobs/{id}`; it matches what `interpedia concepts --json` prints.
"""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from interpedia_core.errors import InvalidInput
from interpedia_testing.asgi import app_client
from interpedia_trainer import jobs, runs
from interpedia_trainer.app import create_app
from interpedia_trainer.cli import commands
from interpedia_trainer.concepts import builtin_concepts
from interpedia_trainer.dashboard_store import register_source
from interpedia_trainer.settings import TrainerSettings

MODEL = "tiny-random"
HOOK = "blocks.1.hook_resid_post"
D_SAE = 64  # tiny_train_flags
GREETINGS = ["hello there, my friend", "good morning to you all", "hi, how are you today"]


@pytest.fixture(scope="module")
def sae_dir(tiny_corpus: Path, tiny_train_flags: list[str], tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("concepts-api") / "sae"
    flags = [*tiny_train_flags, "--corpus", str(tiny_corpus), "--total-tokens", "512"]
    trained = CliRunner().invoke(commands, ["train", *flags, "--out", str(out)])
    assert trained.exit_code == 0, trained.output
    return out


@pytest.fixture(scope="module")
async def source_id(sae_dir: Path, db_sessionmaker) -> str:
    async with db_sessionmaker.begin() as session:
        source = await register_source(
            session,
            model_id=MODEL,
            model_display_name="Tiny",
            n_layers=2,
            d_model=64,
            source_set="res-api",
            sae_path=str(sae_dir),
        )
    return source.id


@pytest.fixture
async def client(database_url, tiny_corpus, tmp_path):
    settings = TrainerSettings(
        database_url=database_url, corpus=str(tiny_corpus), data_dir=tmp_path
    )
    async with app_client(create_app(settings)) as client:
        yield client


def _ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


# --- runs ------------------------------------------------------------------------------------


@pytest.fixture
async def two_runs(db_sessionmaker) -> tuple[int, int]:
    """A finished run with a two-step time series, and a newer failed one."""
    config = {"hook_name": HOOK, "model_id": MODEL, "architecture": "topk", "source_set": "a"}
    async with db_sessionmaker.begin() as session:
        done = await runs.create_run(session, {**config, "k": 4, "lr": 0.001})
        await runs.record_metrics(session, done.id, 10, 1280, {"loss": 0.5, "l0": 4.0})
        await runs.record_metrics(session, done.id, 20, 2560, {"loss": 0.25, "l0": 4.0})
        await runs.mark_run(
            session,
            done.id,
            "succeeded",
            output_path="/saes/run-a",
            source_id="1-a",
            final_metrics={"eval/l0": 4.0, "eval/mse": 0.125},
        )
        failed = await runs.create_run(session, {**config, "k": 8, "lr": 0.001})
        await runs.mark_run(session, failed.id, "failed", error="out of memory")
    return done.id, failed.id


async def test_runs_are_listed_newest_first_with_their_summary(client, two_runs) -> None:
    done, failed = two_runs
    listed = (_ok(await client.get("/v1/runs", params={"limit": 500})))["runs"]
    ids = [r["id"] for r in listed]
    assert ids == sorted(ids, reverse=True) and ids.index(failed) < ids.index(done)
    summary = next(r for r in listed if r["id"] == done)
    assert (summary["status"], summary["n_tokens"], summary["source_id"]) == (
        "succeeded",
        2560,
        "1-a",
    )
    assert summary["final_metrics"] == {"eval/l0": 4.0, "eval/mse": 0.125}
    assert summary["name"] == "1-a" and summary["config"]["k"] == 4

    [newest] = (_ok(await client.get("/v1/runs", params={"limit": 1})))["runs"]
    assert newest["id"] == failed and newest["error"] == "out of memory"
    assert newest["n_tokens"] == 0 and newest["finished_at"] is not None


async def test_a_run_shows_config_output_and_metric_time_series(client, two_runs) -> None:
    done, _ = two_runs
    shown = _ok(await client.get(f"/v1/runs/{done}"))
    run = shown["run"]
    assert (run["status"], run["error"], run["output_path"]) == ("succeeded", None, "/saes/run-a")
    assert run["source_id"] == "1-a" and run["config"]["lr"] == 0.001
    assert run["final_metrics"]["eval/mse"] == 0.125 and run["started_at"] is None
    assert shown["metrics"] == [
        {"step": 10, "n_tokens": 1280, "values": {"loss": 0.5, "l0": 4.0}},
        {"step": 20, "n_tokens": 2560, "values": {"loss": 0.25, "l0": 4.0}},
    ]


async def test_runs_compare_side_by_side(client, two_runs) -> None:
    done, failed = two_runs
    params = {"run_ids": [done, failed]}
    compared = _ok(await client.get("/v1/runs/compare", params=params))
    assert [r["id"] for r in compared["runs"]] == [done, failed]
    assert compared["config_differences"] == {"k": [4, 8]}
    assert compared["final_metrics"]["eval/mse"] == [0.125, None]


@pytest.mark.parametrize(
    ("path", "params", "status", "detail"),
    [
        ("/v1/runs", {"limit": 0}, 422, "limit"),
        ("/v1/runs", {"limit": 501}, 422, "limit"),
        ("/v1/runs/999999", {}, 404, "no training run 999999"),
        ("/v1/runs/latest", {}, 422, "run_id"),
        ("/v1/runs/compare", {"run_ids": [1]}, 422, "run_ids"),
        ("/v1/runs/compare", {"run_ids": [999998, 999999]}, 404, "no training run 999998"),
    ],
)
async def test_bad_run_requests_are_refused_with_a_message(
    client, path, params, status, detail
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


# --- concepts --------------------------------------------------------------------------------


async def test_builtin_concept_sets_are_listed_with_their_sizes(client) -> None:
    listed = (_ok(await client.get("/v1/concepts")))["concepts"]
    builtin = builtin_concepts()
    assert [c["name"] for c in listed] == list(builtin) and "numbers" in builtin
    assert all(c["n_examples"] == len(builtin[c["name"]]) == len(c["examples"]) for c in listed)


def _concept(name: str, examples: list[str]) -> dict:
    return {"name": name, "examples": examples}


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"source_id": "9-nope"}, 404, "no source 9-nope of model tiny-random"),
        ({"concepts": [_concept("empty", [])]}, 422, "concepts.0.examples"),
        ({"concepts": [_concept("blank", ["ok", "   "])]}, 422, "concepts.0.examples.1"),
        ({"concepts": [_concept("x", ["a"]), _concept("x", ["b"])]}, 422, "'x' repeats"),
        ({"concepts": []}, 422, "concepts"),
        ({"concepts": [_concept("long", ["y" * 1001])]}, 422, "at most 1000 characters"),
        ({"concepts": [_concept(f"c{i}", ["z" * 1000] * 4) for i in range(26)]}, 422, "104000"),
        ({"top_n": 0}, 422, "top_n"),
        ({"top_n": 51}, 422, "top_n"),
        ({"base_documents": 1001}, 422, "base_documents"),
        ({"corpus": "/nonexistent/corpus"}, 400, "does not exist"),
        ({"model_id": "concept-model", "source_id": "1-res-w"}, 400, "has no weights_uri"),
    ],
)
async def test_bad_concept_requests_are_refused_before_any_job(
    client, source_id, weightless_source, body, status, detail
) -> None:
    await weightless_source("concept-model", "res-w")
    response = await client.post(
        "/v1/concepts", json={"model_id": MODEL, "source_id": source_id, **body}
    )
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


async def _enqueue(client, body: dict) -> dict:
    [job_id] = (_ok(await client.post("/v1/concepts", json=body)))["job_ids"]
    job = _ok(await client.get(f"/v1/jobs/{job_id}"))
    assert (job["task"], job["status"]) == ("trainer:concept_scores", "todo")
    return job


async def test_concept_scores_job_result_is_read_back_and_matches_the_cli(
    client, source_id, sae_dir, tiny_corpus, job_context, tmp_path
) -> None:
    numbers = builtin_concepts()["numbers"]
    body = {
        "model_id": MODEL,
        "source_id": source_id,
        "concepts": [_concept("numbers", numbers), _concept("greetings", GREETINGS)],
        "top_n": 3,
        "base_documents": 6,
    }
    job = await _enqueue(client, body)
    assert job["args"]["concepts"] == {"numbers": numbers, "greetings": GREETINGS}
    assert job["args"]["corpus"] == str(tiny_corpus)  # the service's default corpus

    await jobs.concept_scores.func(job_context(job["id"]), **job["args"])
    job = _ok(await client.get(f"/v1/jobs/{job['id']}"))
    assert (job["done"], job["total"], job["message"]) == (2, 2, "concept scores")
    table = job["details"]["concepts"]
    assert [(r["concept"], r["n_examples"]) for r in table] == [
        ("numbers", len(numbers)),
        ("greetings", 3),
    ]
    for row in table:
        scores = [f["score"] for f in row["features"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
        assert all(
            0 <= f["feature"] < D_SAE and 0 <= f["frac_concept"] <= 1 for f in row["features"]
        )

    for name, examples in (("numbers", numbers), ("greetings", GREETINGS)):
        (tmp_path / f"{name}.txt").write_text("\n".join(examples))
    printed = CliRunner().invoke(
        commands,
        [
            "concepts",
            *("--sae", str(sae_dir), "--model", MODEL, "--corpus", str(tiny_corpus)),
            *(
                "--concept",
                str(tmp_path / "numbers.txt"),
                "--concept",
                str(tmp_path / "greetings.txt"),
            ),
            *("--top-n", "3", "--base-documents", "6", "--json"),
        ],
    )
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout) == table  # the same numbers, through JSONB and back


async def test_concept_scores_default_to_the_builtin_sets(client, source_id, job_context) -> None:
    job = await _enqueue(client, {"model_id": MODEL, "source_id": source_id, "top_n": 2})
    assert job["args"]["concepts"] is None and job["args"]["base_documents"] == 20

    await jobs.concept_scores.func(job_context(job["id"]), **job["args"])
    table = (_ok(await client.get(f"/v1/jobs/{job['id']}")))["details"]["concepts"]
    assert [r["concept"] for r in table] == list(builtin_concepts())
    assert all(len(r["features"]) == 2 for r in table)


async def test_a_refused_concept_job_says_why_in_its_status(
    client, source_id, job_context, tmp_path
) -> None:
    short = tmp_path / "short"
    short.mkdir()
    (short / "a.txt").write_text("hi")  # fewer tokens than one concept example
    body = {"model_id": MODEL, "source_id": source_id, "corpus": str(short)}
    job = await _enqueue(client, {**body, "concepts": [_concept("greetings", GREETINGS)]})

    with pytest.raises(InvalidInput, match="shorter than one concept example"):
        await jobs.concept_scores.func(job_context(job["id"]), **job["args"])
    job = _ok(await client.get(f"/v1/jobs/{job['id']}"))
    assert job["message"].startswith("failed: ") and "shorter than one" in job["message"]
    assert job["details"] == {}
