"""Explain, score and embed every feature of a source: bounded and resumable.

Each feature is its own unit of work with its own transaction, so a crash
loses at most the features in flight; a re-run skips what is already stored
(an explanation of the same type, a score of the same type, a vector of the
same model). LLM calls are bounded by `concurrency` (and by the client's own
semaphore). Retrying has one owner, the `openai` SDK (`llm_max_retries`: rate
limits, timeouts and 5xx, with backoff that honours Retry-After): a feature
whose call still fails is recorded in `failed` and tried again by the next run,
never retried here on top, so one feature costs at most `llm_max_retries + 1` calls.

A stop request (`interpedia_core.stopping`: Ctrl-C, SIGTERM, a worker shutting down)
abandons the units in flight, whose transactions roll back, and raises `Stopped`; what
was committed stays, and the rerun skips it.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interpedia_autointerp import explain, scoring, storage
from interpedia_autointerp.embeddings import Embedder
from interpedia_autointerp.llm import LLMClient
from interpedia_core import stopping
from interpedia_core.errors import InvalidInput, UpstreamError
from interpedia_db.models import Explanation, ExplanationScore

logger = logging.getLogger(__name__)

T = TypeVar("T")
Progress = Callable[[int, int, str], Awaitable[None]]  # (done, total, message)
Explainer = Callable[[storage.FeatureExamples], Awaitable[explain.GeneratedExplanation]]


@dataclass
class BatchResult:
    total: int = 0  # units of work considered
    done: int = 0  # newly completed
    skipped: int = 0  # already done before this run
    not_fired: int = 0  # features with no activations on the dashboard prompts: nothing to do
    failed: dict[int, str] = field(default_factory=dict)  # index or id → reason


def offline_explainer() -> Explainer:
    async def run(examples: storage.FeatureExamples) -> explain.GeneratedExplanation:
        return explain.offline_explanation(examples.records, examples.logit_tokens)

    return run


def llm_explainer(client: LLMClient) -> Explainer:
    async def run(examples: storage.FeatureExamples) -> explain.GeneratedExplanation:
        return await explain.llm_explanation(client, examples.records, examples.logit_tokens)

    return run


async def _bounded(
    items: Sequence[T],
    work: Callable[[T], Awaitable[str | None]],
    result: BatchResult,
    concurrency: int,
    progress: Progress | None,
) -> None:
    """Run `work` on every item, `concurrency` at a time; a returned string is a failure.

    On a stop request the items in flight are cancelled and `Stopped` says how far it got.
    """
    slots = asyncio.Semaphore(concurrency)
    lock = asyncio.Lock()

    async def one(item: T) -> None:
        async with slots:
            failure = await work(item)
        async with lock:
            if failure is None:
                result.done += 1
            else:
                result.failed[item] = failure  # type: ignore[index]
            if progress is not None:
                finished = result.skipped + result.done + len(result.failed)
                await progress(finished, result.total, f"{len(result.failed)} failed")

    try:
        await stopping.until_stopped(asyncio.gather(*(one(item) for item in items)))
    except stopping.Stopped as exc:
        left = len(items) - result.done - len(result.failed)
        raise exc.at(f"with {result.done} done and {left} left; rerun to continue") from None


async def explain_source(
    sessionmaker: async_sessionmaker[AsyncSession],
    model_id: str,
    source_id: str,
    explainer: Explainer,
    type_name: str,
    *,
    embedder: Embedder | None = None,
    concurrency: int = 4,
    progress: Progress | None = None,
) -> BatchResult:
    """Explain every feature of the source that fired and has no `type_name` explanation yet.

    Features that never fired on the dashboard prompts are counted as `not_fired`, not
    tried: there is nothing to explain them by, which is not a failure.
    """
    async with sessionmaker.begin() as session:
        fired = await storage.features_fired(session, model_id, source_id)
        done = await storage.explained_indices(session, model_id, source_id, type_name)
    if not fired:
        raise InvalidInput(f"source {model_id}/{source_id} has no features")
    indices = [index for index, has_examples in fired.items() if has_examples]
    result = BatchResult(
        total=len(indices), skipped=len(done & set(indices)), not_fired=len(fired) - len(indices)
    )
    todo = [i for i in indices if i not in done]

    async def work(index: int) -> str | None:
        async with sessionmaker.begin() as session:
            examples = await storage.load_feature_examples(session, model_id, source_id, index)
        try:
            generated = await explainer(examples)
        except (InvalidInput, UpstreamError) as exc:
            return exc.message
        async with sessionmaker.begin() as session:
            row = await storage.store_explanation(session, model_id, source_id, index, generated)
            if embedder is not None:
                await storage.store_embeddings(session, embedder, [row])
        return None

    await _bounded(todo, work, result, concurrency, progress)
    return result


SCORERS = ("embedding", "detection", "fuzz", "simulation")


async def score_source(
    sessionmaker: async_sessionmaker[AsyncSession],
    model_id: str,
    source_id: str,
    scorer: str,  # embedding, detection, fuzz or simulation
    *,
    embedder: Embedder | None = None,
    llm: LLMClient | None = None,
    sample: int | None = None,
    concurrency: int = 4,
    progress: Progress | None = None,
) -> BatchResult:
    """Score every explanation of the source that has no `scorer` score yet.

    With `sample`, stop once that many explanations of the source carry a score, picking
    the unscored ones evenly across feature indices so the sample spans the source.
    """
    if scorer not in SCORERS:
        raise InvalidInput(f"unknown scorer {scorer!r}; use one of {', '.join(SCORERS)}")
    if scorer != "embedding" and llm is None:
        raise InvalidInput(f"{scorer} scores need an LLM (set INTERPEDIA_AUTOINTERP_LLM_MODEL)")
    async with sessionmaker.begin() as session:
        scored = exists().where(
            ExplanationScore.explanation_id == Explanation.id,
            ExplanationScore.type_name == scorer,
        )
        base = select(Explanation.id).where(
            Explanation.model_id == model_id, Explanation.source_id == source_id
        )
        all_ids = list(await session.scalars(base.order_by(Explanation.id)))
        todo = list(await session.scalars(base.where(~scored).order_by(Explanation.id)))
    result = BatchResult(total=len(all_ids), skipped=len(all_ids) - len(todo))
    if sample is not None:
        wanted = max(sample - result.skipped, 0)
        todo = todo[:: max(len(todo) // wanted, 1)][:wanted] if wanted else []
        result.total = result.skipped + len(todo)

    async def run(explanation: Explanation, examples: storage.FeatureExamples):
        if scorer == "embedding":
            if embedder is None:
                raise InvalidInput("embedding scores need an embedding model")
            return await scoring.embedding_score(
                embedder, explanation.description, examples.records
            )
        judges = {
            "detection": scoring.detection_score,
            "fuzz": scoring.fuzzing_score,
            "simulation": scoring.simulation_score,
        }
        if scorer not in judges:
            raise InvalidInput(f"unknown scorer {scorer!r}")
        if llm is None:
            raise InvalidInput(f"{scorer} scores need an LLM")
        return await judges[scorer](llm, explanation.description, examples.records)

    async def work(explanation_id: int) -> str | None:
        async with sessionmaker.begin() as session:
            explanation = await storage.get_explanation(session, explanation_id)
            examples = await storage.load_feature_examples(
                session, explanation.model_id, explanation.source_id, explanation.index
            )
        try:
            score = await run(explanation, examples)
        except (InvalidInput, UpstreamError) as exc:
            return exc.message
        async with sessionmaker.begin() as session:
            await storage.store_score(session, explanation_id, score)
        return None

    await _bounded(todo, work, result, concurrency, progress)
    return result


async def embed_explanations(
    sessionmaker: async_sessionmaker[AsyncSession],
    embedder: Embedder,
    *,
    model_id: str | None = None,
    source_id: str | None = None,
    batch_size: int = 256,
    progress: Progress | None = None,
) -> BatchResult:
    """Give every explanation (of a source, a model, or all) a vector from `embedder`.

    Used to re-embed imported explanations (which carry OpenAI vectors) with the
    local model, so search works without a key. Batches commit one by one.
    """
    result = BatchResult()
    while True:
        stopping.check()  # between batches: each commits on its own
        async with sessionmaker.begin() as session:
            batch = await storage.explanations_missing_embedding(
                session, embedder.name, model_id=model_id, source_id=source_id, limit=batch_size
            )
            if not batch:
                break
            result.done += await storage.store_embeddings(session, embedder, batch)
        result.total = result.done
        if progress is not None:
            await progress(result.done, result.total, "embedding")
    return result
