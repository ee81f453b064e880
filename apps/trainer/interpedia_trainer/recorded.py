"""Pipeline steps whose results go to the database; the CLI and the jobs both call these.

`train_recorded` trains a recorded run (status running → succeeded | failed | stopped, the
metric time series as it is produced) and registers the SAE as a source of its model;
`dashboards_recorded` computes a source's dashboards and stores them. The model and SAE
work runs in a thread, so the event loop keeps serving the database writes the thread
asks for (and a worker's heartbeat keeps beating). The thread runs under a child of the
current stop token (`interpedia_core.stopping`): a stop request, or the awaiting task
being cancelled, ends it at its next safe point, with a checkpoint to resume from.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interpedia_core import stopping
from interpedia_core.errors import InvalidInput
from interpedia_db.models import Source
from interpedia_trainer import dashboard_store, runs
from interpedia_trainer.dashboards import DashboardOptions
from interpedia_trainer.distributed import SINGLE_PROCESS, DataParallel
from interpedia_trainer.model_runtime import HookedModel
from interpedia_trainer.pipeline import (
    Progress,
    dashboards_from_corpus,
    load_sae,
    train_from_corpus,
)
from interpedia_trainer.training import TrainingConfig, TrainResult

logger = logging.getLogger(__name__)

Sessionmaker = async_sessionmaker[AsyncSession]


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
    parallel: DataParallel = SINGLE_PROCESS,
) -> RecordedTraining:
    """Train run `run_id` into `out_dir`, then make it source `{layer}-{source_set}`.

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
) -> StoredDashboards:
    """Dashboards of a source's features (all, or `feature_range`), replacing stored ones.

    With `checkpoint_dir`, a stopped pass is saved there and the rerun continues it.
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
    return StoredDashboards(len(dashboards), fired, written, complete)
