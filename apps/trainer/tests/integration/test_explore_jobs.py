"""A source's feature map and evaluations: queued by training and by the last dashboards,
computed by their jobs, stored for every feature; refused with what is missing.

The tasks run directly with a stand-in job context (as in test_jobs.py); the follow-ups
they queue are read back from the queue's own table.
"""

import json

import psycopg
import pytest
from sqlalchemy import func, select

from interpedia_db.models import Eval, Feature, Source
from interpedia_jobs.worker import WorkerResources
from interpedia_testing.asgi import app_client
from interpedia_trainer import jobs, runs
from interpedia_trainer.app import create_app
from interpedia_trainer.schemas import TrainRequest
from interpedia_trainer.settings import TrainerSettings

MODEL, SET, D_SAE = "tiny-random", "res-explore", 32
SOURCE = f"1-{SET}"


def _queued(database_url: str, task: str, source_id: str) -> list[dict]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT args FROM procrastinate.procrastinate_jobs "
            "WHERE task_name = %s AND args->>'source_id' = %s",
            (task, source_id),
        ).fetchall()
    return [row[0] if isinstance(row[0], dict) else json.loads(row[0]) for row in rows]


@pytest.fixture
def small_evals(resources: WorkerResources) -> WorkerResources:
    """The tiny corpus holds about 30 contexts: a smaller evaluation set and vocabulary."""
    settings = resources.cache["trainer:settings"].model_copy(
        update={
            "eval_contexts": 8,
            "eval_ce_contexts": 2,
            "eval_context_size": 32,
            "absorption_words": 300,
        }
    )
    resources.cache["trainer:settings"] = settings
    return resources


async def test_training_and_dashboards_queue_the_map_and_evaluations_which_store_them(
    small_evals: WorkerResources, job_context, database_url
) -> None:
    resources = small_evals
    body = TrainRequest(
        model_id=MODEL,
        hook_name="blocks.1.hook_resid_post",
        d_sae=D_SAE,
        k=4,
        batch_size=128,
        total_tokens=128 * 10,
        context_size=32,
        source_set=SET,
    )
    config = runs.validated_train_config(body, resources.settings)  # type: ignore[arg-type]
    async with resources.sessionmaker.begin() as session:
        run_id = (await runs.create_run(session, config)).id
    await jobs.train_sae.func(job_context(), run_id)
    [evaluation] = _queued(database_url, "trainer:evaluate_source", SOURCE)
    assert evaluation["kinds"] == ["core", "absorption_first_letter"]

    corpus = str(resources.settings.corpus)
    assert _queued(database_url, "trainer:compute_feature_map", SOURCE) == []
    await jobs.compute_dashboards.func(job_context(), MODEL, SOURCE, 0, D_SAE, 4, 32, corpus)
    assert _queued(database_url, "trainer:compute_feature_map", SOURCE) == [
        {"model_id": MODEL, "source_id": SOURCE}
    ]

    # The queued jobs, run: every feature gets coordinates; both evals are stored.
    await jobs.compute_feature_map.func(job_context(), MODEL, SOURCE)
    await jobs.evaluate_source.func(job_context(), **evaluation)
    async with resources.sessionmaker() as session:
        source = await session.get(Source, (MODEL, SOURCE), populate_existing=True)
        unmapped = await session.scalar(
            select(func.count())
            .select_from(Feature)
            .where(Feature.model_id == MODEL, Feature.source_id == SOURCE, Feature.umap_x.is_(None))
        )
        mapped = await session.scalar(
            select(func.count())
            .select_from(Feature)
            .where(Feature.model_id == MODEL, Feature.source_id == SOURCE)
        )
        evals = {
            e.type_name: e.output
            for e in (
                await session.execute(
                    select(Eval).where(Eval.model_id == MODEL, Eval.source_id == SOURCE)
                )
            ).scalars()
        }
    assert source.has_umap and mapped == D_SAE and unmapped == 0
    assert set(evals) == {"core", "absorption_first_letter"}
    core = evals["core"]["eval_result_metrics"]
    assert 0 < core["sparsity"]["l0"] <= 4 + 1e-6  # TopK with k = 4
    # 8 contexts of 31 tokens after BOS, less the EOS of any document boundary among them
    assert 8 * 31 - 8 < core["token_stats"]["total_tokens_eval_sparsity_variance"] <= 8 * 31
    assert evals["core"]["eval_config"]["evaluation_set"]["n_contexts"] == 8
    absorption = evals["absorption_first_letter"]
    assert absorption["eval_config"]["n_words"] == 300
    assert len(absorption["eval_result_unstructured"]["probe_f1"]) == 26

    # Run again: the map and evals are replaced, not duplicated.
    await jobs.evaluate_source.func(job_context(), MODEL, SOURCE, ["core"], corpus)
    async with resources.sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(Eval).where(Eval.source_id == SOURCE)
        )
    assert count == 2


@pytest.fixture
async def client(database_url, tiny_corpus, tmp_path):
    settings = TrainerSettings(
        database_url=database_url, corpus=str(tiny_corpus), data_dir=tmp_path
    )
    async with app_client(create_app(settings)) as client:
        yield client


async def test_a_map_or_evaluations_refused_name_what_the_source_lacks(
    client, weightless_source, db_sessionmaker
) -> None:
    source_id = await weightless_source(MODEL, "res-bare", layer=1, d_sae=8)
    umap = await client.post("/v1/umap", json={"model_id": MODEL, "source_id": source_id})
    assert umap.status_code == 400 and "has no dashboards yet" in umap.json()["detail"]
    evaluations = await client.post(
        "/v1/evaluations", json={"model_id": MODEL, "source_id": source_id}
    )
    assert evaluations.status_code == 400 and "no weights_uri" in evaluations.json()["detail"]

    # With dashboards but neither weights nor stored decoder vectors: weights are named.
    async with db_sessionmaker.begin() as session:
        source = await session.get(Source, (MODEL, source_id))
        source.has_dashboards = True
        for index in range(8):
            await session.merge(Feature(model_id=MODEL, source_id=source_id, index=index))
    umap = await client.post("/v1/umap", json={"model_id": MODEL, "source_id": source_id})
    assert umap.status_code == 400
    assert (
        "no weights (weights_uri)" in umap.json()["detail"]
        and "8 of its features" in (umap.json()["detail"])
    )

    bad_kind = await client.post(
        "/v1/evaluations",
        json={"model_id": MODEL, "source_id": source_id, "kinds": ["nonsense"]},
    )
    assert bad_kind.status_code == 422
    missing = await client.post("/v1/umap", json={"model_id": MODEL, "source_id": "9-nope"})
    assert missing.status_code == 404 and "9-nope" in missing.json()["detail"]
