"""Training runs in the database: experiment tracking and source registration.

Domain functions take a session and plain values; the caller owns the
transaction. A run moves queued → running → succeeded | failed | stopped (stopped on
request with a checkpoint; running again when resumed), its metrics are stored as a
time series, and a finished SAE is registered as a source of its model so the
inference service can load it.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import Conflict, InvalidInput, NotFound
from interpedia_db.models import Source, TrainingMetric, TrainingRun
from interpedia_trainer.schemas import TrainRequest
from interpedia_trainer.settings import TrainerSettings

HOOK_PATTERN = re.compile(
    r"^blocks\.(\d+)\.(hook_resid_pre|hook_resid_mid|hook_resid_post|mlp\.hook_post|attn\.hook_z)$"
)


def hook_layer(hook_name: str) -> int:
    """The layer of a hook name users know (`blocks.6.hook_resid_post` → 6)."""
    match = HOOK_PATTERN.match(hook_name)
    if match is None:
        raise InvalidInput(
            f"unknown hook {hook_name!r}: use blocks.<layer>.hook_resid_pre|hook_resid_post, "
            "blocks.<layer>.mlp.hook_post or blocks.<layer>.attn.hook_z"
        )
    return int(match.group(1))


def validated_corpus(corpus: str | None, settings: TrainerSettings) -> str:
    """A local corpus must exist and hold text; a dataset name is checked when loaded."""
    corpus = corpus or settings.resolved_corpus
    path = Path(corpus)
    looks_local = path.is_absolute() or corpus.startswith(".") or path.suffix == ".jsonl"
    try:
        if looks_local or path.exists():
            if not path.exists():
                raise InvalidInput(f"corpus {corpus} does not exist")
            if path.is_dir() and not any(path.glob("*.txt")):
                raise InvalidInput(f"corpus folder {corpus} holds no .txt files")
            if path.is_file() and path.stat().st_size == 0:
                raise InvalidInput(f"corpus file {corpus} is empty")
    except OSError as exc:  # a name too long for the file system, a folder we may not read
        raise InvalidInput(f"corpus {corpus} cannot be read: {exc.strerror}") from None
    return corpus


def validated_train_config(body: TrainRequest, settings: TrainerSettings) -> dict[str, Any]:
    hook_layer(body.hook_name)
    if body.d_sae is not None:  # else d_sae waits for the model's d_model
        from interpedia_trainer.architectures import ArchitectureOptions, validate_architecture

        widths = body.matryoshka_widths
        options = ArchitectureOptions(
            k=body.k,
            aux_loss_coefficient=body.aux_loss_coefficient,
            matryoshka_widths=tuple(widths) if widths is not None else None,
        )
        validate_architecture(body.architecture, 1, body.d_sae, options)
    config = body.model_dump()
    config["corpus"] = validated_corpus(body.corpus, settings)
    return config


def run_name(config: dict[str, Any]) -> str:
    """What a run registers when it succeeds: source `{layer}-{source_set}`, or for a
    transcoder set (one source per layer) the set's name."""
    if config.get("architecture") == "transcoder":
        return config["source_set"]
    return f"{hook_layer(config['hook_name'])}-{config['source_set']}"


async def check_name_free(session: AsyncSession, config: dict[str, Any]) -> None:
    """`Conflict` when a run queued through the API would take a source id already in use.

    A run registers its SAE as source `run_name(config)` of its model. Reusing the id of a
    stored source, or of another run still queued or running, would silently replace an
    SAE that the inference service and the feature pages serve. (`interpedia train
    --register` may reuse one on purpose: a rerun resumes and replaces it.)
    """
    name, model_id = run_name(config), config["model_id"]
    # Two requests for one name at once: the second waits for the first's transaction.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"train:{model_id}:{name}"}
    )
    if await session.get(Source, (model_id, name)) is not None:
        raise Conflict(
            f"source {name} of model {model_id} already exists; choose another source_set "
            "(a run's source id is {layer}-{source_set})"
        )
    active = await active_run(session, model_id, name)
    if active is not None:
        raise Conflict(f"run {active.id} is already training source {name} of model {model_id}")


async def create_run(session: AsyncSession, config: dict[str, Any]) -> TrainingRun:
    run = TrainingRun(
        name=run_name(config),
        model_id=config["model_id"],
        hook_name=config["hook_name"],
        architecture=config["architecture"],
        config=config,
        status="queued",
    )
    session.add(run)
    await session.flush()
    return run


async def active_run(session: AsyncSession, model_id: str, name: str) -> TrainingRun | None:
    """The run of `name` still queued or running, if any (a second would train it twice)."""
    return await session.scalar(
        select(TrainingRun)
        .where(
            TrainingRun.model_id == model_id,
            TrainingRun.name == name,
            TrainingRun.status.in_(("queued", "running")),
        )
        .order_by(TrainingRun.id.desc())
        .limit(1)
    )


async def stopped_run(session: AsyncSession, config: dict[str, Any]) -> TrainingRun | None:
    """The newest stopped run of exactly this config: the one a rerun of its command resumes.

    Its config names its output folder, where the checkpoint is; another config (a changed
    flag) starts a new run. The number of ranks may change: a checkpoint resumes on any.
    """
    candidates = await session.execute(
        select(TrainingRun)
        .where(TrainingRun.status == "stopped", TrainingRun.model_id == config["model_id"])
        .order_by(TrainingRun.id.desc())
    )
    wanted = _without_world_size(config)
    return next(
        (run for run in candidates.scalars() if _without_world_size(run.config) == wanted), None
    )


def _without_world_size(config: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key != "world_size"}


async def attach_job(session: AsyncSession, run_id: int, job_id: int) -> None:
    run = await session.get(TrainingRun, run_id)
    if run is not None:
        run.job_id = job_id


async def get_run(session: AsyncSession, run_id: int) -> TrainingRun:
    run = await session.get(TrainingRun, run_id)
    if run is None:
        raise NotFound(f"no training run {run_id}")
    return run


async def list_runs(session: AsyncSession, limit: int = 50) -> list[TrainingRun]:
    result = await session.execute(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit))
    return list(result.scalars())


@dataclass
class RunSummary:
    """A run as `interpedia runs` shows it: identity, status, tokens so far, final metrics."""

    id: int
    name: str
    model_id: str
    hook_name: str
    architecture: str
    status: str
    n_tokens: int  # the last recorded step's count (0 before the first)
    source_id: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    started_at: datetime | None = None
    output_path: str | None = None  # the SAE folder, once trained
    job_id: int | None = None  # the queue job that trains it (None for CLI runs)
    config: dict[str, Any] = field(default_factory=dict)
    final_metrics: dict[str, Any] = field(default_factory=dict)

    def final(self, name: str) -> float | None:
        """A held-out metric (`explained_variance`, `l0`, `mse`, `ce_loss_recovered`)."""
        value = self.final_metrics.get(f"eval/{name}")
        return None if value is None else float(value)


SUMMARY_METRICS = ("explained_variance", "l0", "mse", "ce_loss_recovered")


async def run_summaries(
    session: AsyncSession, *, run_ids: Sequence[int] | None = None, limit: int = 50
) -> list[RunSummary]:
    """The newest runs, or exactly `run_ids` in that order (`NotFound` for a missing one)."""
    if run_ids is None:
        found = await list_runs(session, limit)
    else:
        found = [await get_run(session, run_id) for run_id in run_ids]
    tokens = dict(
        (
            await session.execute(
                select(TrainingMetric.run_id, func.max(TrainingMetric.n_tokens))
                .where(TrainingMetric.run_id.in_([run.id for run in found]))
                .group_by(TrainingMetric.run_id)
            )
        ).all()
    )
    return [
        RunSummary(
            id=run.id,
            name=run.name,
            model_id=run.model_id,
            hook_name=run.hook_name,
            architecture=run.architecture,
            status=run.status,
            n_tokens=int(tokens.get(run.id) or 0),
            source_id=run.source_id,
            error=run.error,
            created_at=run.created_at,
            finished_at=run.finished_at,
            started_at=run.started_at,
            output_path=run.output_path,
            job_id=run.job_id,
            config=dict(run.config or {}),
            final_metrics=dict(run.final_metrics or {}),
        )
        for run in found
    ]


@dataclass
class MetricPoint:
    """The metrics a run recorded at one training step."""

    step: int
    n_tokens: int
    values: dict[str, float]


@dataclass
class RunDetail:
    """A run's summary and its whole metric time series, oldest step first."""

    run: RunSummary
    metrics: list[MetricPoint]


async def run_detail(session: AsyncSession, run_id: int) -> RunDetail:
    """One run with its time series; `NotFound` if there is no such run."""
    [summary] = await run_summaries(session, run_ids=[run_id])
    rows = await session.execute(
        select(TrainingMetric.step, TrainingMetric.n_tokens, TrainingMetric.values)
        .where(TrainingMetric.run_id == run_id)
        .order_by(TrainingMetric.step)
    )
    points = [MetricPoint(step, n_tokens, dict(values)) for step, n_tokens, values in rows]
    return RunDetail(summary, points)


@dataclass
class RunComparison:
    """Runs side by side: each config key whose value differs, and every final metric."""

    runs: list[RunSummary]
    config_differences: dict[str, list[Any]]
    final_metrics: dict[str, list[float | None]]


def compare_runs(summaries: Sequence[RunSummary]) -> RunComparison:
    if len(summaries) < 2:
        raise InvalidInput(f"a comparison needs two or more runs, got {len(summaries)}")
    differences: dict[str, list[Any]] = {}
    for key in sorted({key for s in summaries for key in s.config}):
        values = [s.config.get(key) for s in summaries]
        if any(v != values[0] for v in values[1:]):
            differences[key] = values
    metric_names = sorted({key for s in summaries for key in s.final_metrics})
    metrics = {
        key: [
            None if s.final_metrics.get(key) is None else float(s.final_metrics[key])
            for s in summaries
        ]
        for key in metric_names
    }
    return RunComparison(list(summaries), differences, metrics)


async def get_source(
    session: AsyncSession, model_id: str, source_id: str, *, for_update: bool = False
) -> Source:
    """The source, or `NotFound`; `for_update` locks its row until the transaction ends.

    The lock is `FOR NO KEY UPDATE`: it serializes writers of the source's own columns
    but not the feature rows inserted for it (their foreign key takes `KEY SHARE`).
    """
    source = await session.get(
        Source,
        (model_id, source_id),
        with_for_update={"key_share": True} if for_update else None,
        populate_existing=for_update,
    )
    if source is None:
        raise NotFound(f"no source {source_id} of model {model_id}")
    return source


def sae_location(source: Source) -> str:
    """Where the source's SAE is loaded from; `InvalidInput` for a source with no weights."""
    if not source.weights_uri:
        raise InvalidInput(f"source {source.id} has no weights_uri to load its SAE from")
    return source.weights_uri


async def record_metrics(
    session: AsyncSession, run_id: int, step: int, n_tokens: int, values: dict[str, float]
) -> None:
    await session.merge(TrainingMetric(run_id=run_id, step=step, n_tokens=n_tokens, values=values))


async def mark_run(session: AsyncSession, run_id: int, status: str, **fields: Any) -> None:
    run = await get_run(session, run_id)
    run.status = status
    now = datetime.now(UTC)
    if status == "running":
        run.started_at = run.started_at or now  # a resumed run keeps its first start
        run.finished_at, run.error = None, None
    if status in ("succeeded", "failed"):
        run.finished_at = now
    for key, value in fields.items():
        setattr(run, key, value)
