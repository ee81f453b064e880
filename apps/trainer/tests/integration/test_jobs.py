"""The trainer's jobs make the same recorded calls as the CLI: train, register, dashboards.

The task functions run directly with a stand-in job context (`job_context`, what a worker
passes), so the test needs no worker and no queue, and cannot pick up other tests' jobs.
"""

import asyncio
import signal

import pytest
from procrastinate.jobs import Job
from sqlalchemy import func, select

from interpedia_core import stopping
from interpedia_core.errors import InvalidInput
from interpedia_db.models import Feature, JobProgress, Source, TrainingRun
from interpedia_jobs.worker import WorkerResources
from interpedia_trainer import dashboard_store, jobs, runs
from interpedia_trainer.schemas import TrainRequest


async def _recorded_run(resources: WorkerResources, source_set: str = "res-job", **fields) -> int:
    body = TrainRequest(
        model_id="tiny-random",
        d_sae=32,
        k=4,
        batch_size=128,
        total_tokens=128 * 10,
        context_size=32,
        source_set=source_set,
        **fields,
    )
    config = runs.validated_train_config(body, resources.settings)  # type: ignore[arg-type]
    async with resources.sessionmaker.begin() as session:
        return (await runs.create_run(session, config)).id


async def _feature_indices(resources: WorkerResources, source_id: str) -> list[int]:
    async with resources.sessionmaker() as session:
        return list(
            (
                await session.execute(
                    select(Feature.index)
                    .where(Feature.source_id == source_id)
                    .order_by(Feature.index)
                )
            ).scalars()
        )


async def _has_dashboards(resources: WorkerResources, source_id: str) -> bool:
    async with resources.sessionmaker() as session:
        source = await session.get(Source, ("tiny-random", source_id), populate_existing=True)
    return source.has_dashboards


async def test_train_job_registers_a_source_and_dashboards_jobs_fill_it(
    resources, job_context
) -> None:
    run_id = await _recorded_run(resources, hook_name="blocks.1.hook_resid_post")
    context = job_context()
    await jobs.train_sae.func(context, run_id)
    async with resources.sessionmaker() as session:
        run = await session.get(TrainingRun, run_id, populate_existing=True)
        progress = await session.get(JobProgress, context.job.id)
    assert run.status == "succeeded" and run.source_id == "1-res-job"
    assert run.output_path.endswith(f"run-{run_id}") and "eval/mse" in run.final_metrics
    assert progress.done == progress.total == 128 * 10 and progress.message == "training"

    # d_sae 32 in two range jobs: the source is browsable only after the second.
    corpus = str(resources.settings.corpus)
    await jobs.compute_dashboards.func(
        job_context(), "tiny-random", "1-res-job", 16, 32, 4, 32, corpus
    )
    assert await _feature_indices(resources, "1-res-job") == list(range(16, 32))
    assert not await _has_dashboards(resources, "1-res-job")
    await jobs.compute_dashboards.func(
        job_context(), "tiny-random", "1-res-job", 0, 16, 4, 32, corpus
    )
    assert await _feature_indices(resources, "1-res-job") == list(range(32))
    assert await _has_dashboards(resources, "1-res-job")


async def test_a_failing_train_job_marks_its_run_failed(resources, job_context) -> None:
    run_id = await _recorded_run(resources, hook_name="blocks.7.hook_resid_post")
    with pytest.raises(InvalidInput, match="has 2 layers"):
        await jobs.train_sae.func(job_context(), run_id)
    async with resources.sessionmaker() as session:
        run = await session.get(TrainingRun, run_id, populate_existing=True)
        n_sources = await session.scalar(
            select(func.count()).select_from(Source).where(Source.id == "7-res-job")
        )
    assert run.status == "failed" and "has 2 layers" in run.error and n_sources == 0


async def test_a_train_job_stopped_by_its_worker_is_requeued_and_resumes(
    resources, job_context
) -> None:
    run_id = await _recorded_run(resources, "res-stop", hook_name="blocks.1.hook_resid_post")
    token = stopping.StopToken()
    steps: list[int] = []

    def counting_context(stop_at: int | None):
        context = job_context()

        async def should_abort_async() -> bool:  # polled after every step's progress write
            steps.append(1)
            if len(steps) == stop_at:
                token.request("stopped: the worker is shutting down", signal.SIGTERM)
            return False

        context.should_abort_async = should_abort_async
        return context

    with stopping.stop_scope(token), pytest.raises(stopping.Stopped, match="at step 3 ") as exc:
        await jobs.train_sae.func(counting_context(stop_at=3), run_id)
    async with resources.sessionmaker() as session:
        run = await session.get(TrainingRun, run_id, populate_existing=True)
    assert run.status == "stopped" and run.started_at is not None
    checkpoint = resources.settings.resolved_saes_dir / f"run-{run_id}" / "checkpoints" / "latest"
    assert (checkpoint / "trainer_state.pt").exists()
    job = Job(id=1, queue="trainer", lock=None, queueing_lock=None, task_name="t", attempts=9)
    assert jobs.RETRY.get_retry_decision(exception=exc.value, job=job) is not None

    steps.clear()
    await jobs.train_sae.func(counting_context(stop_at=None), run_id)  # the retried job
    assert len(steps) == 10 - 3  # only the steps the stopped job had not trained
    async with resources.sessionmaker() as session:
        resumed = await session.get(TrainingRun, run_id, populate_existing=True)
    assert resumed.status == "succeeded" and resumed.started_at == run.started_at


async def test_a_stop_while_storing_dashboards_stores_nothing(
    resources, job_context, monkeypatch
) -> None:
    run_id = await _recorded_run(resources, "res-store", hook_name="blocks.1.hook_resid_post")
    await jobs.train_sae.func(job_context(), run_id)
    token = stopping.StopToken()
    store = dashboard_store.store_dashboards

    async def stop_then_store(*args, **kwargs):
        token.request("stopped: the worker is shutting down", signal.SIGTERM)
        await asyncio.sleep(0)  # the stop is seen at the store's first wait
        return await store(*args, **kwargs)

    monkeypatch.setattr(dashboard_store, "store_dashboards", stop_then_store)
    corpus = str(resources.settings.corpus)
    arguments = ("tiny-random", "1-res-store", 0, 32, 4, 32, corpus)
    with stopping.stop_scope(token), pytest.raises(stopping.Stopped, match="while storing"):
        await jobs.compute_dashboards.func(job_context(), *arguments)
    assert await _feature_indices(resources, "1-res-store") == []  # rolled back, whole

    monkeypatch.setattr(dashboard_store, "store_dashboards", store)
    await jobs.compute_dashboards.func(job_context(), *arguments)  # the retried job
    assert await _feature_indices(resources, "1-res-store") == list(range(32))
