"""Explaining, scoring and embedding whole sources: resumable batches, jobs, HTTP paths."""

from collections.abc import Iterator

import procrastinate
import pytest
from fastapi.testclient import TestClient
from procrastinate.testing import InMemoryConnector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interpedia_autointerp import batch, jobs
from interpedia_autointerp.app import create_app
from interpedia_autointerp.explain import LLM_TYPE_NAME, OFFLINE_TYPE_NAME
from interpedia_autointerp.llm import LLMClient, LLMConfig
from interpedia_autointerp.settings import AutointerpSettings
from interpedia_core.errors import InvalidInput, UpstreamError
from interpedia_core.settings import CommonSettings
from interpedia_db.models import Explanation, ExplanationEmbedding, ExplanationScore, JobProgress
from interpedia_jobs.retry import ResumeOnlyWhenStopped
from interpedia_jobs.worker import WorkerResources

from ..factories import add_feature, add_model_and_sources

MODEL = "batch-model"
SOURCE = "0-res-x"


@pytest.fixture(scope="module")
async def source_with_features(db_sessionmaker, cat_records, other_records) -> None:
    """Features 0–3 fire on cats; feature 4 has no examples at all."""
    async with db_sessionmaker.begin() as session:
        await add_model_and_sources(session, MODEL, {SOURCE: "res-x", "1-res-x": "res-x"})
        for index in range(4):
            await add_feature(session, MODEL, SOURCE, index, cat_records + other_records, ["Ġmeow"])
        await add_feature(session, MODEL, SOURCE, 4)
        for index in range(3):
            await add_feature(session, MODEL, "1-res-x", index, cat_records)


async def _count(sessionmaker, statement) -> int:
    async with sessionmaker.begin() as session:
        return int(await session.scalar(statement))


async def test_explain_source_is_resumable(
    source_with_features, db_sessionmaker: async_sessionmaker[AsyncSession], local_embedder
) -> None:
    calls: list[int] = []
    real = batch.offline_explainer()

    async def crashing(examples):  # the "crash": feature 2 fails on the first run
        calls.append(len(examples.records))
        if len(calls) == 3:
            raise UpstreamError("rate limited")
        return await real(examples)

    progress: list[tuple[int, int]] = []

    async def record(done: int, total: int, message: str) -> None:
        progress.append((done, total))

    first = await batch.explain_source(
        db_sessionmaker,
        MODEL,
        SOURCE,
        crashing,
        OFFLINE_TYPE_NAME,
        embedder=local_embedder,
        concurrency=1,
        progress=record,
    )
    # feature 4 has no activations: not tried, and not a failure
    assert (first.total, first.done, first.skipped, first.not_fired) == (4, 3, 0, 1)
    assert set(first.failed) == {2}
    assert progress[-1] == (4, 4)

    second = await batch.explain_source(
        db_sessionmaker,
        MODEL,
        SOURCE,
        real,
        OFFLINE_TYPE_NAME,
        embedder=local_embedder,
        concurrency=2,
    )
    assert (second.done, second.skipped, second.failed) == (1, 3, {})
    explained = (
        select(func.count())
        .select_from(Explanation)
        .where(Explanation.model_id == MODEL, Explanation.source_id == SOURCE)
    )
    assert await _count(db_sessionmaker, explained) == 4
    embedded = (
        select(func.count())
        .select_from(ExplanationEmbedding)
        .join(Explanation)
        .where(Explanation.model_id == MODEL, Explanation.source_id == SOURCE)
    )
    assert await _count(db_sessionmaker, embedded) == 4


async def test_one_layer_retries_a_failing_llm(source_with_features, db_sessionmaker, fake_llm):
    """The SDK retries (here twice); the batch and the job add no attempts of their own: a
    failing feature costs 3 calls, not 3 (SDK) x 3 (batch) x 3 (job) = 27."""
    fake_llm.status = 500
    llm = LLMClient(LLMConfig(model="judge", base_url=fake_llm.url, max_retries=2))
    try:
        result = await batch.explain_source(
            db_sessionmaker,
            MODEL,
            "1-res-x",
            batch.llm_explainer(llm),
            LLM_TYPE_NAME,
            concurrency=3,
        )
    finally:
        await llm.close()
    assert set(result.failed) == {0, 1, 2} and result.done == 0
    assert "answered 500" in result.failed[0]
    assert len(fake_llm.requests) == 3 * 3  # three features, 1 + 2 SDK retries each
    for name in ("explain_source", "score_source", "embed_explanations"):
        # No job retries on top of the SDK's: only a job its worker stopped is requeued.
        assert isinstance(jobs.blueprint.tasks[name].retry_strategy, ResumeOnlyWhenStopped), name


async def test_score_and_reembed_source(
    source_with_features, db_sessionmaker, local_embedder
) -> None:
    async with db_sessionmaker.begin() as session:
        session.add(
            Explanation(
                model_id=MODEL,
                source_id="1-res-x",
                index=0,
                description="imported: cats",
                type_name="imported",
            )
        )
    result = await batch.embed_explanations(
        db_sessionmaker, local_embedder, model_id=MODEL, source_id="1-res-x"
    )
    assert result.done == 1
    again = await batch.embed_explanations(
        db_sessionmaker, local_embedder, model_id=MODEL, source_id="1-res-x"
    )
    assert again.done == 0

    scored = await batch.score_source(
        db_sessionmaker, MODEL, "1-res-x", "embedding", embedder=local_embedder
    )
    assert (scored.total, scored.done) == (1, 1)
    async with db_sessionmaker.begin() as session:
        score = (
            await session.scalars(
                select(ExplanationScore)
                .join(Explanation)
                .where(Explanation.model_id == MODEL, Explanation.source_id == "1-res-x")
            )
        ).one()
    assert score.type_name == "embedding" and score.scorer_model == "all-MiniLM-L6-v2"
    assert len(score.details["breakdown"]) == 16  # 8 activating + 8 contrast
    rescored = await batch.score_source(
        db_sessionmaker, MODEL, "1-res-x", "embedding", embedder=local_embedder
    )
    assert (rescored.done, rescored.skipped) == (0, 1)
    sampled = await batch.score_source(
        db_sessionmaker, MODEL, "1-res-x", "embedding", embedder=local_embedder, sample=1
    )
    assert (sampled.total, sampled.done, sampled.skipped) == (1, 0, 1)
    with pytest.raises(InvalidInput, match="need an LLM"):
        await batch.score_source(db_sessionmaker, MODEL, "1-res-x", "detection")
    with pytest.raises(InvalidInput, match="unknown scorer"):
        await batch.score_source(db_sessionmaker, MODEL, "1-res-x", "vibes")


async def test_explain_job_through_procrastinate(
    source_with_features, database_url, db_sessionmaker, embedders
) -> None:
    app = procrastinate.App(connector=InMemoryConnector())
    app.add_tasks_from(jobs.blueprint, namespace="autointerp")
    resources = WorkerResources(
        CommonSettings(database_url=database_url), database_url, db_sessionmaker
    )
    resources.cache["autointerp.settings"] = AutointerpSettings(database_url=database_url)
    resources.cache["autointerp.embedders"] = embedders
    async with app.open_async():
        job_id = await app.configure_task("autointerp:explain_source").defer_async(
            model_id=MODEL, source_id="1-res-x", method="offline"
        )
        await app.run_worker_async(wait=False, additional_context={"resources": resources})
        assert app.connector.jobs[job_id]["status"] == "succeeded"
    async with db_sessionmaker.begin() as session:
        progress = await session.get(JobProgress, job_id)
        types = set(
            await session.scalars(
                select(Explanation.type_name).where(
                    Explanation.model_id == MODEL, Explanation.source_id == "1-res-x"
                )
            )
        )
    assert progress is not None and (progress.done, progress.total) == (3, 3)
    assert OFFLINE_TYPE_NAME in types


@pytest.fixture
def db_client(database_url, embedders, wait_ready) -> Iterator[TestClient]:
    with TestClient(
        create_app(AutointerpSettings(database_url=database_url), embedders=embedders)
    ) as client:
        wait_ready(client)
        yield client


def test_explain_and_score_stored_feature_over_http(source_with_features, db_client) -> None:
    explained = db_client.post(
        "/v1/explain/feature", json={"model_id": MODEL, "source_id": SOURCE, "index": 1}
    )
    assert explained.status_code == 200, explained.text
    body = explained.json()
    assert body["type_name"] == OFFLINE_TYPE_NAME and "cat" in body["description"]
    scored = db_client.post(
        "/v1/score/explanation",
        json={"explanation_id": body["explanation_id"], "scorers": ["embedding"]},
    )
    assert scored.status_code == 200, scored.text
    assert scored.json()["scores"][0]["value"] > 0.9

    missing = db_client.post(
        "/v1/explain/feature", json={"model_id": MODEL, "source_id": SOURCE, "index": 999}
    )
    assert missing.status_code == 404 and "999" in missing.json()["detail"]
    empty = db_client.post(
        "/v1/explain/feature", json={"model_id": MODEL, "source_id": SOURCE, "index": 4}
    )
    assert empty.status_code == 400 and "no activations" in empty.json()["detail"]
    no_llm = db_client.post(
        "/v1/score/explanation",
        json={"explanation_id": body["explanation_id"], "scorers": ["fuzz"]},
    )
    assert no_llm.status_code == 400
    unknown = db_client.post("/v1/score/explanation", json={"explanation_id": 10**9})
    assert unknown.status_code == 404
