"""Fixtures of the trainer's integration tests: job contexts, sources without an SAE."""

import itertools
import time
from collections.abc import Awaitable, Callable

import procrastinate
import pytest
from procrastinate.job_context import AbortReason
from procrastinate.testing import InMemoryConnector
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_db.models import Model as LanguageModel
from interpedia_db.models import Source, SourceSet
from interpedia_jobs.worker import WorkerResources
from interpedia_trainer.settings import TrainerSettings

_job_ids = itertools.count(900_000_001)


@pytest.fixture
def resources(database_url, db_sessionmaker, tiny_corpus, tmp_path) -> WorkerResources:
    """What a worker hands its jobs, with trainer settings on the test database and corpus."""
    settings = TrainerSettings(
        database_url=database_url, data_dir=tmp_path, corpus=str(tiny_corpus)
    )
    resources = WorkerResources(settings, database_url, db_sessionmaker)
    resources.cache["trainer:settings"] = settings
    return resources


@pytest.fixture
def job_context(resources: WorkerResources) -> Callable[..., procrastinate.JobContext]:
    """Makes the context a worker passes a task: for a queued job's id, or a fresh one.

    Task functions run directly with it, so a test needs no worker and cannot pick up
    other tests' queued jobs. It is procrastinate's own `JobContext` (not a stand-in that
    could name methods procrastinate does not have); `aborted=True` makes it one whose job
    was asked to stop, `abort_reason` one that asks that function each time the job checks.
    """

    def make(
        job_id: int | None = None,
        aborted: bool = False,
        abort_reason: Callable[[], AbortReason | None] | None = None,
    ) -> procrastinate.JobContext:
        job = procrastinate.jobs.Job(
            id=next(_job_ids) if job_id is None else job_id,
            queue="trainer",
            lock=None,
            queueing_lock=None,
            task_name="trainer:test",
        )
        return procrastinate.JobContext(
            app=procrastinate.App(connector=InMemoryConnector()),
            job=job,
            start_timestamp=time.time(),
            additional_context={"resources": resources},
            abort_reason=abort_reason or (lambda: AbortReason.USER_REQUEST if aborted else None),
        )

    return make


@pytest.fixture
def weightless_source(db_sessionmaker) -> Callable[..., Awaitable[str]]:
    """Makes a source row (model and set too) with no SAE behind it; returns its id.

    Enough for requests that are split or refused before any SAE is loaded. Calling it
    again with the same ids reuses the rows.
    """

    async def make(
        model_id: str, set_name: str, *, layer: int = 1, d_sae: int = 8, **model_shape: int
    ) -> str:
        async with db_sessionmaker.begin() as session:
            return await add_source(
                session, model_id, set_name, layer=layer, d_sae=d_sae, **model_shape
            )

    return make


async def add_source(
    session: AsyncSession,
    model_id: str,
    set_name: str,
    *,
    layer: int = 1,
    d_sae: int = 8,
    weights_uri: str | None = None,
    n_layers: int | None = None,
    d_model: int = 8,
) -> str:
    """A source row `{layer}-{set_name}` (model and set too, if new); returns its id.

    The session's database is shared by every suite: a row for a real model id must carry
    that model's real shape (`n_layers`, `d_model`), or later suites that read it (vector
    dimensions) see a model that does not exist."""
    source_id = f"{layer}-{set_name}"
    if await session.get(Source, (model_id, source_id)) is not None:
        return source_id
    if await session.get(LanguageModel, model_id) is None:
        layers = n_layers or layer + 1
        session.add(
            LanguageModel(id=model_id, display_name=model_id, layers=layers, d_model=d_model)
        )
        await session.flush()
    session.add(SourceSet(model_id=model_id, name=set_name))
    await session.flush()
    session.add(
        Source(
            model_id=model_id,
            id=source_id,
            set_name=set_name,
            hook_name=f"blocks.{layer}.hook_resid_post",
            layer=layer,
            architecture="topk",
            d_sae=d_sae,
            weights_uri=weights_uri,
        )
    )
    return source_id
