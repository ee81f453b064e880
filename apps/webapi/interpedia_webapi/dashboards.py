"""A feature's dashboard: statistics, examples, explanations with scores, similar features.

`feature_json` renders it with Neuronpedia's field names (`GET /api/feature/...`);
the feature page uses the same `Dashboard` object.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from interpedia_core.errors import NotFound
from interpedia_db.models import Activation, Explanation, Feature

MAX_ACTIVATIONS = 100


@dataclass
class Interval:
    """The examples sampled from one activation interval of a feature."""

    low: float
    high: float
    contains: float | None  # share of the feature's activations in the interval
    activations: list[Activation]


def _example_key(a: Activation) -> tuple[object, ...]:
    """What makes two stored examples the same text."""
    if a.data_index is not None:
        return (a.data_source, a.data_index)
    return tuple(a.tokens)


@dataclass
class Dashboard:
    feature: Feature
    activations: list[Activation]  # top examples first, then the quantile bins
    explanations: list[Explanation]
    similar: list[tuple[int, float]]  # (index, cosine similarity), without the feature itself

    @property
    def top_activations(self) -> list[Activation]:
        return [a for a in self.activations if a.bin_min is None or a.bin_min < 0]

    @property
    def bin_activations(self) -> list[Activation]:
        return [a for a in self.activations if a.bin_min is not None and a.bin_min >= 0]

    @property
    def intervals(self) -> list[Interval]:
        """The bin examples grouped by interval, highest first, without the examples that
        repeat a top one (dashboards computed before bins left the top examples out, and
        some imports, sample the highest interval from every prompt)."""
        top = {_example_key(a) for a in self.top_activations}
        groups: dict[tuple[float, float], Interval] = {}
        for a in self.bin_activations:
            if _example_key(a) in top:
                continue
            key = (float(a.bin_min or 0.0), float(a.bin_max or 0.0))
            group = groups.setdefault(key, Interval(key[0], key[1], a.bin_contains, []))
            group.activations.append(a)
        return sorted(groups.values(), key=lambda g: -g.high)

    @property
    def fired(self) -> bool:
        """Whether the feature fired at all on the prompts its dashboard scanned."""
        return (self.feature.max_act or 0) > 0 or bool(self.top_activations)


async def get_dashboard(
    session: AsyncSession,
    model_id: str,
    source_id: str,
    index: int,
    max_activations: int = MAX_ACTIVATIONS,
) -> Dashboard:
    feature = await session.get(Feature, (model_id, source_id, index))
    if feature is None:
        raise NotFound(f"no feature {model_id}/{source_id}/{index}")
    activations = (
        (
            await session.execute(
                select(Activation)
                .where(
                    Activation.model_id == model_id,
                    Activation.source_id == source_id,
                    Activation.index == index,
                )
                .order_by(Activation.max_value.desc())
                .limit(min(max_activations, MAX_ACTIVATIONS))
            )
        )
        .scalars()
        .all()
    )
    explanations = (
        (
            await session.execute(
                select(Explanation)
                .where(
                    Explanation.model_id == model_id,
                    Explanation.source_id == source_id,
                    Explanation.index == index,
                )
                .options(selectinload(Explanation.scores), selectinload(Explanation.votes))
                .order_by(Explanation.id)
            )
        )
        .scalars()
        .all()
    )
    # People's votes order them: the most voted first, then the oldest.
    explanations = sorted(explanations, key=lambda e: (-vote_count(e), e.id))
    similar = [
        (int(i), float(v))
        for i, v in zip(
            feature.topk_cos_sim_indices or [], feature.topk_cos_sim_values or [], strict=False
        )
        if int(i) != index
    ]
    return Dashboard(feature, list(activations), list(explanations), similar)


async def get_dashboards(
    session: AsyncSession, keys: list[tuple[str, str, int]], max_activations: int
) -> list[Dashboard]:
    """The dashboards of `keys` that exist, in the order asked (Neuronpedia's `/api/features`
    leaves unknown ones out)."""
    found = []
    for model_id, source_id, index in keys:
        try:
            found.append(await get_dashboard(session, model_id, source_id, index, max_activations))
        except NotFound:
            continue
    return found


async def fired_indices(
    session: AsyncSession, model_id: str, source_id: str, offset: int, limit: int
) -> list[int]:
    """A page of the source's features that fired (`max_act > 0`), by index."""
    return list(
        (
            await session.execute(
                select(Feature.index)
                .where(
                    Feature.model_id == model_id,
                    Feature.source_id == source_id,
                    Feature.max_act > 0,
                )
                .order_by(Feature.index)
                .offset(offset)
                .limit(limit)
            )
        ).scalars()
    )


async def first_descriptions(
    session: AsyncSession, keys: list[tuple[str, str, int]]
) -> dict[tuple[str, str, int], str]:
    """One public explanation text per feature (the alphabetically first of several), for
    tables that anyone may see."""
    if not keys:
        return {}
    rows = await session.execute(
        select(
            Explanation.model_id,
            Explanation.source_id,
            Explanation.index,
            func.min(Explanation.description),
        )
        .where(
            tuple_(Explanation.model_id, Explanation.source_id, Explanation.index).in_(keys),
            Explanation.visibility == "public",
        )
        .group_by(Explanation.model_id, Explanation.source_id, Explanation.index)
    )
    return {(m, s, i): d for m, s, i, d in rows.all()}


def activation_json(a: Activation) -> dict[str, Any]:
    return {
        "id": str(a.id),
        "modelId": a.model_id,
        "layer": a.source_id,
        "source": a.source_id,
        "index": str(a.index),
        "tokens": a.tokens,
        "values": a.values,
        "maxValue": a.max_value,
        "maxValueTokenIndex": a.max_value_token_index,
        "minValue": a.min_value,
        "binMin": a.bin_min,
        "binMax": a.bin_max,
        "binContains": a.bin_contains,
        "dataIndex": None if a.data_index is None else str(a.data_index),
        "dataSource": a.data_source,
    }


def vote_count(e: Explanation) -> int:
    """The explanation's points from votes (its `votes` must be loaded)."""
    return sum(v.points for v in e.votes)


def explanation_json(e: Explanation, *, with_scores: bool = True) -> dict[str, Any]:
    """Neuronpedia's `Explanation` fields; `with_scores` when its scores and votes are loaded."""
    data: dict[str, Any] = {
        "id": str(e.id),
        "modelId": e.model_id,
        "layer": e.source_id,
        "source": e.source_id,
        "index": str(e.index),
        "description": e.description,
        "typeName": e.type_name,
        "explanationModelName": e.explanation_model_name,
        "authorId": None if e.author_id is None else str(e.author_id),
        "visibility": e.visibility.upper(),
    }
    if with_scores:
        data["scores"] = [
            {
                "id": str(s.id),
                "value": s.value,
                "explanationScoreTypeName": s.type_name,
                "explanationScoreModelName": s.scorer_model,
                "jsonDetails": s.details,
            }
            for s in e.scores
        ]
        data["votes"] = [
            {"id": str(v.id), "voterId": str(v.voter_id), "points": v.points} for v in e.votes
        ]
        data["voteCount"] = vote_count(e)
    return data


def feature_json(d: Dashboard) -> dict[str, Any]:
    """The dashboard with Neuronpedia's `Neuron` field names."""
    f = d.feature
    return {
        "modelId": f.model_id,
        "layer": f.source_id,
        "index": str(f.index),
        "maxActApprox": f.max_act,
        "frac_nonzero": f.frac_nonzero,
        "hookName": f.hook_name,
        "hasVector": f.vector is not None,
        "vectorDefaultSteerStrength": f.default_steer_strength,
        "pos_str": f.pos_str,
        "pos_values": f.pos_values,
        "neg_str": f.neg_str,
        "neg_values": f.neg_values,
        "freq_hist_data_bar_heights": f.freq_hist_heights,
        "freq_hist_data_bar_values": f.freq_hist_values,
        "logits_hist_data_bar_heights": f.logits_hist_heights,
        "logits_hist_data_bar_values": f.logits_hist_values,
        "topkCosSimIndices": f.topk_cos_sim_indices,
        "topkCosSimValues": f.topk_cos_sim_values,
        "explanations": [explanation_json(e) for e in d.explanations],
        "activations": [activation_json(a) for a in d.activations],
    }
