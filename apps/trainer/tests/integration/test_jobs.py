"""The trainer's jobs make the same recorded calls as the CLI: train, register, dashboards.

The task functions run directly with a stand-in job context (what a worker passes), so
the test needs no worker and no queue, and cannot pick up other tests' queued jobs.
"""

import itertools
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from interpedia_core.errors import InvalidInput
from interpedia_db.models import Feature, JobProgress, Source, TrainingRun
from interpedia_jobs.worker import WorkerResources
from interpedia_trainer import jobs, runs
from interpedia_trainer.schemas import TrainRequest
from interpedia_trainer.settings import TrainerSettings

_job_ids = itertools.count(900_000_001)


@pytest.fixture
def resources(database_url, db_sessionmaker, tiny_corpus, tmp_path) -> WorkerResources:
    settings = TrainerSettings(
        database_url=database_url, data_dir=tmp_path, corpus=str(tiny_corpus)
    )
    resources = WorkerResources(settings, database_url, db_sessionmaker)
    resources.cache["trainer:settings"] = settings
    return resources


def _context(resources: WorkerResources) -> SimpleNamespace:
    async def should_abort_async() -> bool:
        return False

    return SimpleNamespace(
        additional_context={"resources": resources},
        job=SimpleNamespace(id=next(_job_ids)),
        should_abort_async=should_abort_async,
    )


async def _recorded_run(resources: WorkerResources, **fields) -> int:
    body = TrainRequest(
        model_id="tiny-random",
        d_sae=32,
        k=4,
        batch_size=128,
        total_tokens=128 * 10,
        context_size=32,
        source_set="res-job",
        **fields,
    )
    config = runs.validated_train_config(body, resources.settings)  # type: ignore[arg-type]
    async with resources.sessionmaker.begin() as session:
        return (await runs.create_run(session, config)).id


async def test_train_job_registers_a_source_and_dashboards_job_fills_it(resources) -> None:
    run_id = await _recorded_run(resources, hook_name="blocks.1.hook_resid_post")
    context = _context(resources)
    await jobs.train_sae.func(context, run_id)
    async with resources.sessionmaker() as session:
        run = await session.get(TrainingRun, run_id, populate_existing=True)
        progress = await session.get(JobProgress, context.job.id)
    assert run.status == "succeeded" and run.source_id == "1-res-job"
    assert run.output_path.endswith(f"run-{run_id}") and "eval/mse" in run.final_metrics
    assert progress.done == progress.total == 128 * 10 and progress.message == "training"

    await jobs.compute_dashboards.func(
        _context(resources),
        "tiny-random",
        "1-res-job",
        8,
        24,
        4,
        32,
        str(resources.settings.corpus),
    )
    async with resources.sessionmaker() as session:
        source = await session.get(Source, ("tiny-random", "1-res-job"), populate_existing=True)
        indices = (
            await session.execute(
                select(Feature.index)
                .where(Feature.source_id == "1-res-job")
                .order_by(Feature.index)
            )
        ).scalars()
    assert source.has_dashboards and list(indices) == list(range(8, 24))


async def test_a_failing_train_job_marks_its_run_failed(resources) -> None:
    run_id = await _recorded_run(resources, hook_name="blocks.7.hook_resid_post")
    with pytest.raises(InvalidInput, match="has 2 layers"):
        await jobs.train_sae.func(_context(resources), run_id)
    async with resources.sessionmaker() as session:
        run = await session.get(TrainingRun, run_id, populate_existing=True)
        n_sources = await session.scalar(
            select(func.count()).select_from(Source).where(Source.id == "7-res-job")
        )
    assert run.status == "failed" and "has 2 layers" in run.error and n_sources == 0
