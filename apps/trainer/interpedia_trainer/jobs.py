"""Trainer jobs on the shared queue (namespace `trainer`): training (SAEs and transcoder
sets), dashboards, concepts, feature maps and evaluations.

Each task is a thin shell over `recorded.py` / `pipeline.py` (the same calls the CLI
makes): it loads what it needs (the model is cached per worker) and reports progress;
the work runs in a thread so the worker's heartbeat keeps beating. All tasks are safe
to run twice: training resumes from its checkpoint, dashboards replace their feature
range, maps and evaluations replace the source's, and concept scores overwrite the
job's own progress row. The concept table is the job's result: it is stored in the
progress `details` that `GET /v1/jobs/{id}` shows. Training queues the new source's
evaluations and the last dashboard range queues its map (`recorded.follow_ups`).
"""

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import procrastinate

from interpedia_core.errors import InterpediaError
from interpedia_db.models import Source
from interpedia_jobs.progress import report_progress
from interpedia_jobs.retry import RetryUnlessRefused
from interpedia_jobs.worker import WorkerResources, resources_of
from interpedia_trainer import dashboard_store, recorded, runs
from interpedia_trainer.concepts import builtin_concepts
from interpedia_trainer.model_runtime import HookedModel, load_hooked_model
from interpedia_trainer.pipeline import concepts_from_corpus, load_sae
from interpedia_trainer.settings import TrainerSettings
from interpedia_trainer.training import TrainingConfig

logger = logging.getLogger(__name__)
blueprint = procrastinate.Blueprint()
T = TypeVar("T")


# Retries cover a worker that died or a transient database error; a bad config fails at once.
RETRY = RetryUnlessRefused(max_attempts=3, wait=5)


class JobAborted(InterpediaError):
    """The job was cancelled."""


def _trainer_settings(resources: WorkerResources) -> TrainerSettings:
    return resources.cache.setdefault("trainer:settings", TrainerSettings())


async def _source(resources: WorkerResources, model_id: str, source_id: str) -> Source:
    """The source a job works on (`NotFound` naming it), read in a short session of its own."""
    async with resources.sessionmaker() as session:
        return await runs.get_source(session, model_id, source_id)


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


async def _write_progress(context: procrastinate.JobContext, **fields: Any) -> None:
    """Upsert the job's progress row (`report_progress` fields) in its own transaction."""
    async with resources_of(context).sessionmaker.begin() as session:
        await report_progress(session, context.job.id, **fields)


class _ThreadBridge:
    """Lets the training thread write progress and check for cancellation on the event loop."""

    def __init__(self, context: procrastinate.JobContext) -> None:
        self.context = context
        self.loop = asyncio.get_running_loop()

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def progress(self, done: int, total: int, message: str, details: dict | None = None) -> None:
        async def write() -> bool:
            await _write_progress(
                self.context, done=done, total=total, message=message, details=details
            )
            # procrastinate 3 keeps the abort flag on the context (the worker listens for
            # abort requests): a plain call, no round trip.
            return self.context.should_abort()

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
        aux_loss_coefficient=config.get("aux_loss_coefficient", 1.0),
        dead_feature_window=config.get("dead_feature_window", 1000),
        matryoshka_widths=config.get("matryoshka_widths"),
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


async def _recorded_run(
    context: procrastinate.JobContext,
    run_id: int,
    configure: Callable[[dict[str, Any], int, str], T],
    d_in_of: Callable[[HookedModel, dict[str, Any]], int],
) -> tuple[WorkerResources, TrainerSettings, dict[str, Any], HookedModel, T]:
    """A training job's run: its config, the model (cached per worker) and
    `configure(config, d_in_of(model, config), device)`; a failure to load or configure
    fails the run."""
    resources = resources_of(context)
    settings = _trainer_settings(resources)
    async with resources.sessionmaker() as session:
        config = dict((await runs.get_run(session, run_id)).config)
    async with recorded.failing_run(resources.sessionmaker, run_id):
        model = await _model(resources, config["model_id"], settings.device)
        d_in = await asyncio.to_thread(d_in_of, model, config)
        configured = configure(config, d_in, settings.device)
    return resources, settings, config, model, configured


def _hook_width(model: HookedModel, config: dict[str, Any]) -> int:
    """An SAE's d_in: its hook's own width (hook_z: n_heads * d_head; mlp.hook_post: d_mlp)."""
    return model.hook_width(config["hook_name"])


@blueprint.task(name="train_sae", queue="trainer", pass_context=True, retry=RETRY)
async def train_sae(context: procrastinate.JobContext, run_id: int) -> None:
    """Train the SAE of a recorded run, then register it as a source of its model."""
    resources, settings, config, model, cfg = await _recorded_run(
        context, run_id, training_config, _hook_width
    )
    bridge = _ThreadBridge(context)
    await recorded.train_recorded(
        resources.sessionmaker,
        run_id,
        cfg,
        model,
        config["corpus"],
        settings.resolved_saes_dir / f"run-{run_id}",
        source_set=config["source_set"],
        cache_dir=settings.cache_dir / "activations",
        on_progress=lambda done, total, metrics: bridge.progress(done, total, "training", metrics),
        follow_up=recorded.follow_ups(resources.database_url),
    )


@blueprint.task(name="train_transcoders", queue="trainer", pass_context=True, retry=RETRY)
async def train_transcoders(context: procrastinate.JobContext, run_id: int) -> None:
    """Train the transcoder set of a recorded run, register it and queue its dashboards."""
    resources, _, _, model, (base, run) = await _recorded_run(
        context, run_id, recorded.transcoder_run_of, lambda model, _: model.d_model
    )
    bridge = _ThreadBridge(context)
    await recorded.train_transcoders_recorded(
        resources.sessionmaker,
        run_id,
        base,
        model,
        run,
        on_progress=lambda done, total, metrics: bridge.progress(
            done, total, "training transcoders", {"run_id": run_id, **metrics}
        ),
        follow_up=recorded.follow_ups(resources.database_url),
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
    source = await _source(resources, model_id, source_id)
    model = await _model(resources, model_id, settings.device)
    bridge = _ThreadBridge(context)
    await recorded.dashboards_recorded(
        resources.sessionmaker,
        model,
        source,
        corpus,
        n_prompts=n_prompts,
        context_size=context_size,
        feature_range=(start, stop),
        device=settings.device,
        token_strings=await _token_strings(resources, model),
        on_progress=lambda done, total: bridge.progress(done, total, "dashboards"),
        checkpoint_dir=settings.data_dir / "checkpoints",
        follow_up=recorded.follow_ups(resources.database_url),
    )


@blueprint.task(name="compute_feature_map", queue="trainer", pass_context=True, retry=RETRY)
async def compute_feature_map(
    context: procrastinate.JobContext, model_id: str, source_id: str
) -> None:
    """The 2-D UMAP of a source's decoder directions, stored on its features' rows."""
    resources = resources_of(context)
    settings = _trainer_settings(resources)
    await _write_progress(context, done=0, total=1, message="feature map")
    stored = await recorded.feature_map_recorded(
        resources.sessionmaker, model_id, source_id, device=settings.device
    )
    await _write_progress(
        context,
        done=1,
        total=1,
        message="feature map",
        details={"features": stored.features, "clusters": stored.clusters},
    )


@blueprint.task(name="evaluate_source", queue="trainer", pass_context=True, retry=RETRY)
async def evaluate_source(
    context: procrastinate.JobContext,
    model_id: str,
    source_id: str,
    kinds: list[str],
    corpus: str,
) -> None:
    """Core metrics and/or first-letter absorption of a source's SAE, stored as its evals."""
    resources = resources_of(context)
    settings = _trainer_settings(resources)
    source = await _source(resources, model_id, source_id)
    runs.sae_location(source)  # a source without weights fails before the model loads
    model = await _model(resources, model_id, settings.device)
    bridge = _ThreadBridge(context)
    spec, absorption = recorded.evaluation_setup(settings)
    outputs = await recorded.evaluate_recorded(
        resources.sessionmaker,
        model,
        source,
        corpus,
        kinds=kinds,
        spec=spec,
        absorption=absorption,
        device=settings.device,
        on_progress=lambda kind, done, total: bridge.progress(done, total, kind),
    )
    await _write_progress(
        context,
        done=len(outputs),
        total=len(kinds),
        message="evaluations",
        details={"evals": [o["eval_type_id"] for o in outputs]},
    )


@blueprint.task(name="concept_scores", queue="trainer", pass_context=True, retry=RETRY)
async def concept_scores(
    context: procrastinate.JobContext,
    model_id: str,
    source_id: str,
    concepts: dict[str, list[str]] | None,
    top_n: int,
    base_documents: int,
    corpus: str,
) -> None:
    """Score concept sets (None: the builtin ones) against a source's features.

    The table goes to the job's progress `details` as `{"concepts": [...]}`, one entry
    per concept (`ConceptResult`); a refused input leaves `failed: <why>` as the message.
    """
    resources = resources_of(context)
    settings = _trainer_settings(resources)
    sets = builtin_concepts() if concepts is None else concepts
    try:
        source = await _source(resources, model_id, source_id)
        model = await _model(resources, model_id, settings.device)
        sae = await asyncio.to_thread(load_sae, runs.sae_location(source), settings.device)
        results = await asyncio.to_thread(
            concepts_from_corpus,
            model,
            sae,
            sets,
            corpus,
            base_documents=base_documents,
            top_n=top_n,
        )
    except InterpediaError as exc:
        await _write_progress(context, done=0, total=len(sets), message=f"failed: {exc}")
        raise
    await _write_progress(
        context,
        done=len(results),
        total=len(sets),
        message="concept scores",
        details={"concepts": [dataclasses.asdict(r) for r in results]},
    )
