"""Pipeline steps whose results go to the database; the CLI and the jobs both call these.

`train_recorded` trains a recorded run (status running → succeeded | failed | stopped, the
metric time series as it is produced) and registers the SAE as a source of its model;
`dashboards_recorded` computes a source's dashboards and stores them;
`feature_map_recorded` and `evaluate_recorded` store a source's map and evaluations;
`train_transcoders_recorded` trains a transcoder set as a run (per-layer metrics in the
same time series an SAE run has) and registers it as a source set with its dashboards queued.
The model and SAE work runs in a thread, so the event loop keeps serving the database
writes the thread asks for (and a worker's heartbeat keeps beating). The thread runs under
a child of the current stop token (`interpedia_core.stopping`): a stop request, or the
awaiting task being cancelled, ends it at its next safe point, with a checkpoint to resume
from.

Finished work leaves its follow-up on the queue through `follow_up` (see `FollowUp`):
a trained SAE's evaluations, a source's map once its last dashboards are stored. The
follow-ups are jobs, so `make demo` serves pages while a worker computes them.
"""

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interpedia_core import stopping
from interpedia_core.errors import InvalidInput
from interpedia_db.connect import database_url_of
from interpedia_db.models import Source
from interpedia_trainer import dashboard_store, feature_map, runs
from interpedia_trainer.absorption import ABSORPTION, AbsorptionConfig, evaluate_absorption
from interpedia_trainer.corpus import tail_contexts
from interpedia_trainer.dashboards import DashboardOptions
from interpedia_trainer.distributed import SINGLE_PROCESS, DataParallel
from interpedia_trainer.evaluation import CORE, EvaluationSet, evaluate_core, store_evaluation
from interpedia_trainer.model_runtime import HookedModel
from interpedia_trainer.pipeline import (
    Progress,
    dashboards_from_corpus,
    load_sae,
    train_from_corpus,
)
from interpedia_trainer.settings import TrainerSettings
from interpedia_trainer.training import TrainingConfig, TrainResult
from interpedia_trainer.transcoders import TranscoderSetResult, train_transcoder_set

if TYPE_CHECKING:
    import procrastinate

logger = logging.getLogger(__name__)

Sessionmaker = async_sessionmaker[AsyncSession]
# Enqueue (task name, queueing lock, priority, task kwargs): `follow_ups` bound to a queue.
# Returns the job id, or None if that work is already queued.
FollowUp = Callable[[str, str, int, dict[str, Any]], Awaitable[int | None]]
EVAL_KINDS = (CORE, ABSORPTION)


def follow_ups(queue: "str | procrastinate.App") -> FollowUp:
    """Follow-ups deferred on the trainer queue: through an open job app (a service), or a
    database URL (a CLI command or a job; a short-lived app is opened per follow-up)."""
    from interpedia_jobs.queue import defer_follow_up, defer_unless_queued

    async def defer(
        task_name: str, queueing_lock: str, priority: int, kwargs: dict[str, Any]
    ) -> int | None:
        options = {"queue": "trainer", "queueing_lock": queueing_lock, "priority": priority}
        if isinstance(queue, str):
            return await defer_follow_up(queue, task_name, **options, **kwargs)
        return await defer_unless_queued(queue, task_name, **options, **kwargs)

    return defer


def evaluation_setup(settings: TrainerSettings) -> tuple[EvaluationSet, AbsorptionConfig]:
    """The evaluation set and absorption sample the settings fix (`INTERPEDIA_TRAINER_EVAL_*`)."""
    spec = EvaluationSet(
        n_contexts=settings.eval_contexts,
        n_ce_contexts=min(settings.eval_ce_contexts, settings.eval_contexts),
        context_size=settings.eval_context_size,
    )
    return spec, AbsorptionConfig(max_words=settings.absorption_words)


async def queue_feature_map(follow_up: FollowUp, model_id: str, source_id: str) -> int | None:
    # Before evaluations: a map takes seconds and the source page shows it first.
    return await follow_up(
        "trainer:compute_feature_map",
        f"feature-map:{model_id}:{source_id}",
        1,
        {"model_id": model_id, "source_id": source_id},
    )


async def queue_dashboards(
    follow_up: FollowUp,
    model_id: str,
    source_id: str,
    d_sae: int,
    corpus: str,
    *,
    n_prompts: int = 2048,
    context_size: int = 128,
    features_per_job: int = 4096,
) -> list[int | None]:
    """Dashboard jobs over feature ranges of a new source (a transcoder set's layers), so
    its features get pages like any SAE's; already-queued ranges are left as they are."""
    return [
        await follow_up(
            "trainer:compute_dashboards",
            f"dashboards:{model_id}:{source_id}:{start}",
            0,
            {
                "model_id": model_id,
                "source_id": source_id,
                "start": start,
                "stop": min(start + features_per_job, d_sae),
                "n_prompts": n_prompts,
                "context_size": context_size,
                "corpus": corpus,
            },
        )
        for start in range(0, d_sae, features_per_job)
    ]


async def queue_evaluations(
    follow_up: FollowUp, model_id: str, source_id: str, kinds: list[str], corpus: str
) -> int | None:
    return await follow_up(
        "trainer:evaluate_source",
        f"evaluate:{model_id}:{source_id}:{','.join(kinds)}",
        0,
        {"model_id": model_id, "source_id": source_id, "kinds": kinds, "corpus": corpus},
    )


@asynccontextmanager
async def failing_run(sessionmaker: Sessionmaker, run_id: int) -> AsyncIterator[None]:
    """Mark the run stopped if the block stops on request, failed (with why) if it raises.

    A stopped run kept a checkpoint: the same command (or the retried job) resumes it.
    """
    try:
        yield
    except BaseException as exc:
        if isinstance(exc, stopping.Stopped | asyncio.CancelledError):
            status, error = "stopped", str(exc) or "cancelled"
        else:
            status, error = "failed", str(exc) or type(exc).__name__
        async with sessionmaker.begin() as session:
            await runs.mark_run(session, run_id, status, error=error[:2000])
        raise


@dataclass
class RecordedTraining:
    result: TrainResult
    source_id: str


async def train_recorded(
    sessionmaker: Sessionmaker,
    run_id: int,
    cfg: TrainingConfig,
    model: HookedModel,
    corpus: str,
    out_dir: Path,
    *,
    source_set: str,
    cache_dir: Path | None = None,
    max_contexts: int | None = None,
    resume: bool = True,
    on_progress: Progress | None = None,
    on_stage: Callable[[str], None] | None = None,
    follow_up: FollowUp | None = None,
    parallel: DataParallel = SINGLE_PROCESS,
) -> RecordedTraining:
    """Train run `run_id` into `out_dir`, then make it source `{layer}-{source_set}`.

    With `follow_up`, the new source's evaluations (core and absorption) are queued.
    Under torchrun only rank 0 calls this (it alone records metrics); `parallel` is its
    place in the group, the other ranks train through `train_from_corpus` alongside.
    """
    async with sessionmaker.begin() as session:
        await runs.mark_run(session, run_id, "running")
    loop = asyncio.get_running_loop()
    last: dict[str, float] = {}

    def on_metrics(metrics: dict[str, float]) -> None:
        # The loop reports the final metrics again under the last step: merge, not replace.
        nonlocal last
        same_step = last.get("step") == metrics.get("step")
        last = {**last, **metrics} if same_step else dict(metrics)

        async def write() -> None:
            async with sessionmaker.begin() as session:
                await runs.record_metrics(
                    session, run_id, int(last.get("step", 0)), int(last.get("tokens", 0)), last
                )

        asyncio.run_coroutine_threadsafe(write(), loop).result()

    async with failing_run(sessionmaker, run_id):
        result = await stopping.to_thread(
            train_from_corpus,
            cfg,
            model,
            corpus,
            out_dir,
            cache_dir=cache_dir,
            max_contexts=max_contexts,
            on_metrics=on_metrics,
            on_progress=on_progress,
            on_stage=on_stage,
            resume=resume,
            parallel=parallel,
        )
        async with sessionmaker.begin() as session:
            source = await dashboard_store.register_source(
                session,
                model_id=model.model_id,
                model_display_name=model.display_name,
                n_layers=model.n_layers,
                d_model=model.d_model,
                source_set=source_set,
                sae_path=str(result.sae_path.absolute()),
                dataset=str(corpus),
            )
            await runs.mark_run(
                session,
                run_id,
                "succeeded",
                output_path=str(result.sae_path),
                source_id=source.id,
                final_metrics=result.final_metrics,
            )
    if follow_up is not None:
        await queue_evaluations(follow_up, model.model_id, source.id, list(EVAL_KINDS), corpus)
    return RecordedTraining(result, source.id)


@dataclass
class StoredDashboards:
    features: int
    fired: int  # features that fired at least once on the prompts
    activations: int  # example rows written
    complete: bool  # every feature of the source now has a dashboard (`has_dashboards`)


async def dashboards_recorded(
    sessionmaker: Sessionmaker,
    model: HookedModel,
    source: Source,
    corpus: str,
    *,
    n_prompts: int,
    context_size: int,
    feature_range: tuple[int, int] | None = None,
    device: str = "cpu",
    options: DashboardOptions | None = None,
    token_strings: dashboard_store.TokenStrings | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    checkpoint_dir: Path | None = None,
    follow_up: FollowUp | None = None,
) -> StoredDashboards:
    """Dashboards of a source's features (all, or `feature_range`), replacing stored ones.

    With `checkpoint_dir`, a stopped pass is saved there and the rerun continues it. With
    `follow_up`, the range that completes the source queues its feature map.
    """
    start, stop = feature_range or (0, source.d_sae)
    if not 0 <= start < stop <= source.d_sae:
        raise InvalidInput(
            f"feature range {start}:{stop} is outside source {source.id} (0:{source.d_sae})"
        )
    checkpoint = None
    if checkpoint_dir is not None:
        model_key = source.model_id.replace("/", "--")
        checkpoint = checkpoint_dir / f"dashboards-{model_key}-{source.id}-{start}-{stop}.pt"
    sae = await asyncio.to_thread(load_sae, runs.sae_location(source), device)
    dashboards = await stopping.to_thread(
        dashboards_from_corpus,
        model,
        sae,
        corpus,
        n_prompts=n_prompts,
        context_size=context_size,
        feature_range=(start, stop),
        options=options,
        on_progress=on_progress,
        checkpoint=checkpoint,
    )
    if token_strings is None:
        token_strings = await asyncio.to_thread(dashboard_store.vocabulary_strings, model.tokenizer)

    async def store() -> tuple[int, bool]:
        async with sessionmaker.begin() as session:
            written = await dashboard_store.store_dashboards(
                session,
                source.model_id,
                source.id,
                source.hook_name,
                dashboards,
                token_strings,
                data_source=corpus,
            )
            complete = await dashboard_store.mark_dashboards_done(
                session,
                source.model_id,
                source.id,
                num_prompts=n_prompts,
                num_tokens_in_prompt=context_size,
                dataset=corpus,
            )
        return written, complete

    try:
        # Seconds of COPY for a whole source: a stop abandons it, and the transaction rolls
        # back; the pass is not kept past here, so the rerun computes the dashboards again.
        written, complete = await stopping.until_stopped(store())
    except stopping.Stopped as exc:
        raise exc.at("while storing the dashboards (nothing stored; rerun to redo)") from None
    fired = sum(d.max_activation > 0 for d in dashboards)
    if complete and follow_up is not None:
        await queue_feature_map(follow_up, source.model_id, source.id)
    return StoredDashboards(len(dashboards), fired, written, complete)


@dataclass
class StoredMap:
    features: int
    clusters: int  # clusters found (points in none are not one)


async def feature_map_recorded(
    sessionmaker: Sessionmaker,
    model_id: str,
    source_id: str,
    *,
    device: str = "cpu",
    seed: int | None = None,
) -> StoredMap:
    """Compute and store a source's feature map; `InvalidInput` naming what is missing."""
    async with sessionmaker() as session:
        source = await runs.get_source(session, model_id, source_id)
        await feature_map.check_mappable(session, source)
        directions = (
            None if source.weights_uri else await feature_map.stored_directions(session, source)
        )
    if directions is None:
        sae = await asyncio.to_thread(load_sae, runs.sae_location(source), device)
        directions = feature_map.directions_of(sae)
    computed = await asyncio.to_thread(feature_map.compute_feature_map, directions, seed=seed)
    async with sessionmaker.begin() as session:
        await feature_map.store_feature_map(session, model_id, source_id, computed)
    return StoredMap(len(computed.x), len(set(computed.cluster.tolist()) - {-1}))


async def evaluate_recorded(
    sessionmaker: Sessionmaker,
    model: HookedModel,
    source: Source,
    corpus: str,
    *,
    kinds: list[str],
    spec: EvaluationSet | None = None,
    absorption: AbsorptionConfig | None = None,
    device: str = "cpu",
    on_progress: Callable[[str, int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate a source's SAE (`core`, `absorption_first_letter`) and store each output.

    The kinds, the source's model and weights are checked before anything loads.
    """
    check_kinds(kinds)
    if source.model_id != model.model_id:
        raise InvalidInput(f"source {source.id} belongs to {source.model_id}, not {model.model_id}")
    location = runs.sae_location(source)
    sae = await asyncio.to_thread(load_sae, location, device)
    outputs = []
    for kind in kinds:
        # One kind at a time, each stored as soon as it is done (absorption takes longer).
        [output] = await asyncio.to_thread(
            evaluate_sae,
            model,
            sae,
            corpus,
            kinds=[kind],
            spec=spec,
            absorption=absorption,
            on_progress=on_progress,
        )
        async with sessionmaker.begin() as session:
            await store_evaluation(session, source.model_id, source.id, output)
        outputs.append(output)
    return outputs


def check_kinds(kinds: list[str]) -> None:
    """`InvalidInput` unless `kinds` is a non-empty list of known evaluation kinds."""
    unknown = sorted(set(kinds) - set(EVAL_KINDS))
    if unknown or not kinds:
        raise InvalidInput(f"evaluation kinds are {', '.join(EVAL_KINDS)}; got {kinds}")


def evaluate_sae(
    model: HookedModel,
    sae: Any,
    corpus: str,
    *,
    kinds: list[str],
    spec: EvaluationSet | None = None,
    absorption: AbsorptionConfig | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """The eval outputs of a loaded SAE (`core`, `absorption_first_letter`), in `kinds` order.

    The kinds, and that the evaluation set fits in the corpus, are checked before the
    model runs.
    """
    check_kinds(kinds)
    spec = spec or EvaluationSet()
    spec.check()
    contexts = None
    if CORE in kinds:
        contexts = tail_contexts(
            corpus, model.tokenizer, n_contexts=spec.n_contexts, context_size=spec.context_size
        )
    outputs = []
    for kind in kinds:

        def progress(done: int, total: int, kind: str = kind) -> None:
            if on_progress is not None:
                on_progress(kind, done, total)

        if kind == CORE:
            assert contexts is not None
            outputs.append(
                evaluate_core(model, sae, contexts, spec, corpus=corpus, on_progress=progress)
            )
        else:
            outputs.append(
                evaluate_absorption(model, sae, absorption or AbsorptionConfig(), progress)
            )
    return outputs


# The per-layer metrics a transcoder run keeps under `layer_{i}/...` (every metric is also
# kept as the mean over layers under its plain name, the name an SAE run records).
LAYER_METRICS = ("fvu", "l0", "dead_fraction", "explained_variance")
TRANSCODER_HOOK = "blocks.*.mlp.hook_in"  # a run's hook_name: the set reads every layer's


class LayerSeries:
    """Gathers one step's metrics of every layer into one time-series row.

    The transcoder loop reports each layer in turn at the same step (layers in order);
    the row is written once the last layer has reported. The final report (held-out FVU
    and L0) comes at the last step again and is merged into that step's row, as an SAE
    run's final metrics are.
    """

    def __init__(self, layers: list[int]) -> None:
        self.last_layer = max(layers)
        self.step: float | None = None
        self.row: dict[str, float] = {}
        self.by_layer: dict[int, dict[str, float]] = {}  # every metric, for the means

    def add(self, layer: int, metrics: dict[str, float]) -> dict[str, float] | None:
        """Merge one layer's metrics; the whole row once the step's last layer is in."""
        if metrics.get("step") != self.step:
            self.step, self.row, self.by_layer = metrics.get("step"), {}, {}
        values = dict(metrics)
        if "explained_variance" in values and "fvu" not in values:
            values["fvu"] = 1.0 - values["explained_variance"]
        for name in ("tokens", "step"):
            if name in values:
                self.row[name] = values.pop(name)
        self.by_layer.setdefault(layer, {}).update(values)
        self.row.update(
            {f"layer_{layer}/{name}": v for name, v in values.items() if name in LAYER_METRICS}
        )
        if layer != self.last_layer:
            return None
        names = {name for metrics in self.by_layer.values() for name in metrics}
        means = {
            name: sum(values) / len(values)
            for name in names
            if (values := [m[name] for m in self.by_layer.values() if name in m])
        }
        return {**self.row, **means}


def transcoder_final_metrics(result: TranscoderSetResult) -> dict[str, float]:
    """A set's final metrics as a run records them: held-out means under `eval/` (the names
    `interpedia runs` shows for SAE runs) and each layer's FVU, L0 and dead fraction."""
    per_layer = result.per_layer.values()
    final: dict[str, float] = {}
    for name in ("fvu", "l0", "dead_fraction"):
        values = [m[name] for m in per_layer if name in m]
        if values:
            final[f"eval/{name}" if name != "dead_fraction" else name] = sum(values) / len(values)
    if "eval/fvu" in final:
        final["eval/explained_variance"] = 1.0 - final["eval/fvu"]
    for layer, metrics in result.per_layer.items():
        final.update({f"layer_{layer}/{k}": v for k, v in metrics.items() if k in LAYER_METRICS})
    return final


async def register_transcoders(
    sessionmaker: Sessionmaker,
    model: HookedModel,
    result: TranscoderSetResult,
    *,
    name: str,
    activation: str,
    corpus: str,
    follow_up: FollowUp | None,
    dashboard_prompts: int = 2048,
) -> list[str]:
    """Register a trained set as source set `name` (a source per layer) and (with
    `follow_up`) queue each layer's dashboards; returns the source ids."""
    from interpedia_db.transcoder_sets import register_transcoder_set

    async with sessionmaker.begin() as session:
        ids = await register_transcoder_set(
            session,
            model_id=model.model_id,
            model_display_name=model.display_name,
            name=name,
            folder=result.folder.resolve(),
            layers=result.layers,
            n_model_layers=model.n_layers,
            d_model=model.d_model,
            d_transcoder=result.d_transcoder,
            description=f"Transcoders trained by Interpedia ({activation}, "
            f"{result.d_transcoder} features per layer, {result.n_tokens:,} tokens)",
        )
    for source_id in ids if follow_up is not None else []:
        await queue_dashboards(
            follow_up,
            model.model_id,
            source_id,
            result.d_transcoder,
            corpus,
            n_prompts=dashboard_prompts,
        )
    return ids


@dataclass(frozen=True)
class TranscoderRun:
    """A transcoder set to train as a recorded run: what `transcoder_run_config` records."""

    model_id: str
    source_set: str
    corpus: str
    out: str
    layers: str  # `all`, `3`, `0,2,5` or `0-3` (parsed against the model by the job)
    activation: str = "topk"
    skip: bool = False
    max_contexts: int | None = None
    dashboard_prompts: int = 2048


def transcoder_run_config(training: dict[str, Any], run: TranscoderRun) -> dict[str, Any]:
    """The run row's config: the training options given (`TrainingConfig` fields; the job
    fills in the rest for the model) plus the set's own."""
    training = {k: v for k, v in training.items() if k not in ("device", "d_in")}
    TrainingConfig.from_dict({**training, "d_in": 1})  # unknown options fail before queueing
    return {
        **training,
        **dataclasses.asdict(run),
        "architecture": "transcoder",
        "hook_name": TRANSCODER_HOOK,
    }


def transcoder_run_of(
    config: dict[str, Any], d_in: int, device: str
) -> tuple[TrainingConfig, TranscoderRun]:
    """The training config and set options a recorded transcoder run was queued with."""
    fields = {f.name for f in dataclasses.fields(TranscoderRun)}
    training = {
        k: v
        for k, v in config.items()
        if k in TrainingConfig.__dataclass_fields__ and k not in ("architecture", "hook_name")
    }
    base = TrainingConfig.from_dict({**training, "d_in": d_in, "device": device})
    return base, TranscoderRun(**{k: v for k, v in config.items() if k in fields})


async def queue_transcoder_run(
    sessionmaker: Sessionmaker, config: dict[str, Any]
) -> tuple[int, int | None]:
    """Record a transcoder run and queue its job: (run id, job id; None when the same set is
    already queued or training, whose run id is returned).

    A stopped run of the same config is queued again (the job resumes its checkpoints).
    """
    from interpedia_jobs.queue import defer_follow_up

    async with sessionmaker.begin() as session:
        active = await runs.active_run(session, config["model_id"], config["source_set"])
        if active is not None:
            return active.id, None
        run = await runs.stopped_run(session, config) or await runs.create_run(session, config)
        run.status = "queued"
    job_id = await defer_follow_up(
        database_url_of(sessionmaker),
        "trainer:train_transcoders",
        queue="trainer",
        queueing_lock=f"train-transcoders:{config['model_id']}:{config['source_set']}",
        run_id=run.id,
    )
    if job_id is not None:
        async with sessionmaker.begin() as session:
            await runs.attach_job(session, run.id, job_id)
    return run.id, job_id


async def train_transcoders_recorded(
    sessionmaker: Sessionmaker,
    run_id: int,
    base: TrainingConfig,
    model: HookedModel,
    run: TranscoderRun,
    *,
    on_progress: Callable[[int, int, dict[str, float]], None] | None = None,
    follow_up: FollowUp | None = None,
) -> tuple[TranscoderSetResult, list[str]]:
    """Train run `run_id`'s transcoder set (resuming its checkpoints), record each step's
    per-layer metrics, register the set and (with `follow_up`) queue its dashboards.

    `on_progress` hears once per step (every layer steps on the same tokens)."""
    from interpedia_trainer.transcoders import parse_layers

    async with sessionmaker.begin() as session:
        await runs.mark_run(session, run_id, "running")
    loop = asyncio.get_running_loop()
    layers = parse_layers(run.layers, model.n_layers)
    series = LayerSeries(layers)

    def on_metrics(layer: int, metrics: dict[str, float]) -> None:
        row = series.add(layer, metrics)
        if row is None:
            return

        async def write() -> None:
            async with sessionmaker.begin() as session:
                await runs.record_metrics(
                    session, run_id, int(row.get("step", 0)), int(row.get("tokens", 0)), row
                )

        asyncio.run_coroutine_threadsafe(write(), loop).result()

    def progress(done: int, total: int, metrics: dict[str, float]) -> None:
        if on_progress is not None and metrics.get("layer") == layers[-1]:
            on_progress(done, total, metrics)

    async with failing_run(sessionmaker, run_id):
        result = await stopping.to_thread(
            train_transcoder_set,
            base,
            model,
            run.corpus,
            Path(run.out),
            layers=layers,
            activation=run.activation,
            skip=run.skip,
            max_contexts=run.max_contexts,
            scan=run.source_set,
            on_metrics=on_metrics,
            on_progress=progress,
        )
        ids = await register_transcoders(
            sessionmaker,
            model,
            result,
            name=run.source_set,
            activation=run.activation,
            corpus=run.corpus,
            follow_up=follow_up,
            dashboard_prompts=run.dashboard_prompts,
        )
        async with sessionmaker.begin() as session:
            await runs.mark_run(
                session,
                run_id,
                "succeeded",
                output_path=str(result.folder),
                source_id=ids[0],
                final_metrics=transcoder_final_metrics(result),
            )
    return result, ids
