"""The trainer's jobs make the same recorded calls as the CLI: train, register, dashboards.

The task functions run directly with a stand-in job context (`job_context`, what a worker
passes), so the test needs no worker and no queue, and cannot pick up other tests' jobs.
"""

import pytest
from sqlalchemy import func, select

from interpedia_core.errors import InvalidInput
from interpedia_db.models import Feature, JobProgress, Source, TrainingRun
from interpedia_jobs.worker import WorkerResources
from interpedia_trainer import jobs, runs
from interpedia_trainer.schemas import TrainRequest


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


async def test_a_train_job_asked_to_abort_stops_at_its_next_progress_report(
    resources, job_context
) -> None:
    run_id = await _recorded_run(resources, hook_name="blocks.1.hook_resid_post")
    with pytest.raises(jobs.JobAborted, match="was cancelled"):
        await jobs.train_sae.func(job_context(aborted=True), run_id)
    async with resources.sessionmaker() as session:
        run = await session.get(TrainingRun, run_id, populate_existing=True)
    assert run.status != "succeeded" and run.source_id is None


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
