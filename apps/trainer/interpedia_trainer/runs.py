"""Training runs in the database: experiment tracking and source registration.

Domain functions take a session and plain values; the caller owns the
transaction. A run moves queued → running → succeeded | failed, its metrics are
stored as a time series, and a finished SAE is registered as a source of its
model so the inference service can load it.
"""

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import InvalidInput, NotFound
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
    if looks_local or path.exists():
        if not path.exists():
            raise InvalidInput(f"corpus {corpus} does not exist")
        if path.is_dir() and not any(path.glob("*.txt")):
            raise InvalidInput(f"corpus folder {corpus} holds no .txt files")
        if path.is_file() and path.stat().st_size == 0:
            raise InvalidInput(f"corpus file {corpus} is empty")
    return corpus


def validated_train_config(body: TrainRequest, settings: TrainerSettings) -> dict[str, Any]:
    hook_layer(body.hook_name)
    config = body.model_dump()
    config["corpus"] = validated_corpus(body.corpus, settings)
    return config


async def create_run(session: AsyncSession, config: dict[str, Any]) -> TrainingRun:
    layer = hook_layer(config["hook_name"])
    run = TrainingRun(
        name=f"{layer}-{config['source_set']}",
        model_id=config["model_id"],
        hook_name=config["hook_name"],
        architecture=config["architecture"],
        config=config,
        status="queued",
    )
    session.add(run)
    await session.flush()
    return run


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


async def get_source(session: AsyncSession, model_id: str, source_id: str) -> Source:
    source = await session.get(Source, (model_id, source_id))
    if source is None:
        raise NotFound(f"no source {source_id} of model {model_id}")
    return source


async def record_metrics(
    session: AsyncSession, run_id: int, step: int, n_tokens: int, values: dict[str, float]
) -> None:
    await session.merge(TrainingMetric(run_id=run_id, step=step, n_tokens=n_tokens, values=values))


async def mark_run(session: AsyncSession, run_id: int, status: str, **fields: Any) -> None:
    run = await get_run(session, run_id)
    run.status = status
    now = datetime.now(UTC)
    if status == "running":
        run.started_at = now
    if status in ("succeeded", "failed"):
        run.finished_at = now
    for key, value in fields.items():
        setattr(run, key, value)
