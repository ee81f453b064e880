"""Trainer jobs on the shared queue (namespace `trainer`): training and dashboards.

Each task is a thin shell over the domain functions in `pipeline.py`: it loads
what it needs (the model is cached per worker), runs the CPU/GPU work in a
thread so the worker's heartbeat keeps beating, and records progress, metrics
and results in the database. Both tasks are safe to run twice: training
resumes from its checkpoint, and dashboards replace their feature range.
"""

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import procrastinate

from interpedia_core.errors import InterpediaError
from interpedia_jobs.progress import report_progress
from interpedia_jobs.worker import WorkerResources, resources_of
from interpedia_trainer import dashboard_store, runs
from interpedia_trainer.model_runtime import HookedModel, load_hooked_model
from interpedia_trainer.pipeline import dashboards_from_corpus, load_sae, train_from_corpus
from interpedia_trainer.settings import TrainerSettings
from interpedia_trainer.training import TrainingConfig

logger = logging.getLogger(__name__)
blueprint = procrastinate.Blueprint()

# Retries cover a worker that died or a transient database error; a bad config fails at once.
RETRY = procrastinate.RetryStrategy(max_attempts=3, wait=5)


class JobAborted(InterpediaError):
    """The job was cancelled."""


def _trainer_settings(resources: WorkerResources) -> TrainerSettings:
    return resources.cache.setdefault("trainer:settings", TrainerSettings())


async def _model(resources: WorkerResources, model_id: str, device: str) -> HookedModel:
    key = f"trainer:model:{model_id}:{device}"
    if key not in resources.cache:
        resources.cache[key] = await asyncio.to_thread(load_hooked_model, model_id, device)
    return resources.cache[key]


async def _token_strings(
    resources: WorkerResources, model: HookedModel
) -> dashboard_store.TokenStrings:
    key = f"trainer:vocabulary:{model.model_id}"
    if key not in resources.cache:
        resources.cache[key] = await asyncio.to_thread(
            dashboard_store.vocabulary_strings, model.tokenizer
        )
    return resources.cache[key]


class _ThreadBridge:
    """Lets the training thread write progress and check for cancellation on the event loop."""

    def __init__(self, context: procrastinate.JobContext) -> None:
        self.context = context
        self.loop = asyncio.get_running_loop()
        self.sessionmaker = resources_of(context).sessionmaker

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def progress(self, done: int, total: int, message: str, details: dict | None = None) -> None:
        async def write() -> bool:
            async with self.sessionmaker.begin() as session:
                await report_progress(
                    session,
                    self.context.job.id,
                    done=done,
                    total=total,
                    message=message,
                    details=details,
                )
            return await self.context.should_abort_async()

        if self.run(write()):
            raise JobAborted(f"job {self.context.job.id} was cancelled")


def training_config(config: dict[str, Any], d_in: int, device: str) -> TrainingConfig:
    return TrainingConfig(
        d_in=d_in,
        hook_name=config["hook_name"],
        architecture=config["architecture"],
        d_sae=config.get("d_sae"),
        expansion_factor=config.get("expansion_factor") or 8,
        k=config.get("k"),
        l1_coefficient=config["l1_coefficient"],
        l0_coefficient=config["l0_coefficient"],
        lr=config["lr"],
        batch_size=config["batch_size"],
        total_tokens=config["total_tokens"],
        seed=config["seed"],
        device=device,
        model_name=config["model_id"],
        context_size=config["context_size"],
        dataset_path=config["corpus"],
    )


@blueprint.task(name="train_sae", queue="trainer", pass_context=True, retry=RETRY)
async def train_sae(context: procrastinate.JobContext, run_id: int) -> None:
    """Train the SAE of a recorded run, then register it as a source of its model."""
    resources = resources_of(context)
    settings = _trainer_settings(resources)
    async with resources.sessionmaker.begin() as session:
        config = dict((await runs.get_run(session, run_id)).config)
        await runs.mark_run(session, run_id, "running")
    bridge = _ThreadBridge(context)
    out_dir = settings.resolved_saes_dir / f"run-{run_id}"
    try:
        model = await _model(resources, config["model_id"], settings.device)
        cfg = training_config(config, model.d_model, settings.device)

        def on_metrics(metrics: dict[str, float]) -> None:
            async def write() -> None:
                async with resources.sessionmaker.begin() as session:
                    await runs.record_metrics(
                        session,
                        run_id,
                        int(metrics.get("step", 0)),
                        int(metrics.get("tokens", 0)),
                        metrics,
                    )

            bridge.run(write())

        def on_progress(done: int, total: int, metrics: dict[str, float]) -> None:
            bridge.progress(done, total, "training", metrics)

        result = await asyncio.to_thread(
            train_from_corpus,
            cfg,
            model,
            config["corpus"],
            out_dir,
            cache_dir=settings.cache_dir / "activations",
            on_metrics=on_metrics,
            on_progress=on_progress,
        )
    except Exception as exc:
        async with resources.sessionmaker.begin() as session:
            await runs.mark_run(session, run_id, "failed", error=str(exc)[:2000])
        raise
    async with resources.sessionmaker.begin() as session:
        source = await dashboard_store.register_source(
            session,
            model_id=config["model_id"],
            model_display_name=config["model_id"],
            n_layers=model.n_layers,
            d_model=model.d_model,
            source_set=config["source_set"],
            sae_path=str(result.sae_path.absolute()),
            dataset=str(config["corpus"]),
        )
        await runs.mark_run(
            session,
            run_id,
            "succeeded",
            output_path=str(result.sae_path),
            source_id=source.id,
            final_metrics=result.final_metrics,
        )


@blueprint.task(name="compute_dashboards", queue="trainer", pass_context=True, retry=RETRY)
async def compute_dashboards(
    context: procrastinate.JobContext,
    model_id: str,
    source_id: str,
    start: int,
    stop: int,
    n_prompts: int,
    context_size: int,
    corpus: str,
) -> None:
    """Dashboards of features [start, stop) of a source, written to the database."""
    resources = resources_of(context)
    settings = _trainer_settings(resources)
    async with resources.sessionmaker() as session:
        source = await runs.get_source(session, model_id, source_id)
    model = await _model(resources, model_id, settings.device)
    sae = await asyncio.to_thread(load_sae, Path(source.weights_uri or ""), settings.device)
    bridge = _ThreadBridge(context)
    dashboards = await asyncio.to_thread(
        dashboards_from_corpus,
        model,
        sae,
        corpus,
        n_prompts=n_prompts,
        context_size=context_size,
        feature_range=(start, stop),
        on_progress=lambda done, total: bridge.progress(done, total, "dashboards"),
    )
    token_strings = await _token_strings(resources, model)
    async with resources.sessionmaker.begin() as session:
        await dashboard_store.store_dashboards(
            session,
            model_id,
            source_id,
            source.hook_name,
            dashboards,
            token_strings,
            data_source=corpus,
        )
        await mark_dashboards_done(session, model_id, source_id)


async def mark_dashboards_done(session: Any, model_id: str, source_id: str) -> None:
    source = await runs.get_source(session, model_id, source_id)
    source.has_dashboards = True
