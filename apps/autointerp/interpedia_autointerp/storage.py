"""Reading features' examples from the database and storing explanations, scores and vectors.

Functions take a session and add or query; the caller (route, job, CLI) owns
the transaction. Re-running any of them is safe: embedding skips explanations
that already have a vector of that model.
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_autointerp.embeddings import Embedder
from interpedia_autointerp.examples import ActivationRecord
from interpedia_autointerp.explain import GeneratedExplanation
from interpedia_autointerp.scoring import ScoreResult
from interpedia_core.errors import NotFound
from interpedia_db.embeddings import ensure_embedding_model
from interpedia_db.models import (
    Activation,
    Explanation,
    ExplanationEmbedding,
    ExplanationScore,
    Feature,
)

MAX_EXAMPLES = 40


@dataclasses.dataclass(frozen=True)
class FeatureExamples:
    records: list[ActivationRecord]
    logit_tokens: list[str]  # tokens the decoder direction promotes (logit lens, top first)


async def load_feature_examples(
    session: AsyncSession, model_id: str, source_id: str, index: int, limit: int = MAX_EXAMPLES
) -> FeatureExamples:
    """The feature's strongest examples; `NotFound` names the feature when it isn't stored."""
    feature = await session.get(Feature, (model_id, source_id, index))
    if feature is None:
        raise NotFound(f"no feature {model_id}/{source_id}/{index}")
    rows = await session.scalars(
        select(Activation)
        .where(
            Activation.model_id == model_id,
            Activation.source_id == source_id,
            Activation.index == index,
        )
        .order_by(Activation.max_value.desc())
        .limit(limit)
    )
    records = [ActivationRecord(list(a.tokens), [float(v) for v in a.values]) for a in rows]
    return FeatureExamples(records, list(feature.pos_str or []))


async def store_explanation(
    session: AsyncSession,
    model_id: str,
    source_id: str,
    index: int,
    explanation: GeneratedExplanation,
) -> Explanation:
    row = Explanation(
        model_id=model_id,
        source_id=source_id,
        index=index,
        description=explanation.description,
        type_name=explanation.type_name,
        explanation_model_name=explanation.explanation_model_name,
    )
    session.add(row)
    await session.flush()
    return row


async def get_explanation(session: AsyncSession, explanation_id: int) -> Explanation:
    row = await session.get(Explanation, explanation_id)
    if row is None:
        raise NotFound(f"no explanation {explanation_id}")
    return row


async def store_score(
    session: AsyncSession, explanation_id: int, result: ScoreResult
) -> ExplanationScore:
    details: dict[str, Any] = dict(result.details)
    details["breakdown"] = [dataclasses.asdict(b) for b in result.breakdown]
    row = ExplanationScore(
        explanation_id=explanation_id,
        type_name=result.type_name,
        value=result.value,
        scorer_model=result.scorer_model,
        details=details,
    )
    session.add(row)
    await session.flush()
    return row


async def store_embeddings(
    session: AsyncSession, embedder: Embedder, explanations: Sequence[Explanation]
) -> int:
    """Embed `explanations` with `embedder` and upsert their vectors; returns how many."""
    if not explanations:
        return 0
    await ensure_embedding_model(session, embedder.name, embedder.dimensions)
    vectors = await embedder.embed([e.description for e in explanations])
    statement = insert(ExplanationEmbedding).values(
        [
            {"explanation_id": e.id, "embedding_model": embedder.name, "embedding": v.tolist()}
            for e, v in zip(explanations, vectors, strict=True)
        ]
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[
                ExplanationEmbedding.explanation_id,
                ExplanationEmbedding.embedding_model,
            ],
            set_={"embedding": statement.excluded.embedding},
        )
    )
    return len(explanations)


async def explanations_missing_embedding(
    session: AsyncSession,
    embedding_model: str,
    *,
    model_id: str | None = None,
    source_id: str | None = None,
    limit: int = 256,
) -> list[Explanation]:
    """Explanations with no vector from `embedding_model` yet (oldest first), for re-embedding."""
    has_vector = exists().where(
        ExplanationEmbedding.explanation_id == Explanation.id,
        ExplanationEmbedding.embedding_model == embedding_model,
    )
    query = select(Explanation).where(~has_vector)
    if model_id is not None:
        query = query.where(Explanation.model_id == model_id)
    if source_id is not None:
        query = query.where(Explanation.source_id == source_id)
    return list(await session.scalars(query.order_by(Explanation.id).limit(limit)))


async def features_fired(session: AsyncSession, model_id: str, source_id: str) -> dict[int, bool]:
    """Each feature index of the source (in order) → whether it has activation examples (a
    feature that never fired on the dashboard prompts has nothing to explain it by)."""
    has_examples = exists().where(
        Activation.model_id == Feature.model_id,
        Activation.source_id == Feature.source_id,
        Activation.index == Feature.index,
    )
    rows = await session.execute(
        select(Feature.index, has_examples)
        .where(Feature.model_id == model_id, Feature.source_id == source_id)
        .order_by(Feature.index)
    )
    return {index: fired for index, fired in rows.all()}


async def explained_indices(
    session: AsyncSession, model_id: str, source_id: str, type_name: str
) -> set[int]:
    """Features of the source that already have an explanation of `type_name` (resume point)."""
    rows = await session.scalars(
        select(Explanation.index).where(
            Explanation.model_id == model_id,
            Explanation.source_id == source_id,
            Explanation.type_name == type_name,
        )
    )
    return set(rows)
