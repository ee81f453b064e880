"""Models, source sets and sources, with how many features each holds (home page, model list)."""

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import InvalidInput, NotFound
from interpedia_db.models import (
    Explanation,
    ExplanationScore,
    Feature,
    Model,
    Source,
    SourceSet,
    User,
)
from interpedia_webapi import visibility
from interpedia_webapi.dashboards import first_descriptions


@dataclass
class SourceSummary:
    id: str
    set_name: str
    hook_name: str
    layer: int
    architecture: str
    d_sae: int
    features: int
    explanations: int
    has_dashboards: bool
    inference_enabled: bool


@dataclass
class ModelSummary:
    model: Model
    source_sets: list[SourceSet] = field(default_factory=list)
    sources: list[SourceSummary] = field(default_factory=list)

    @property
    def features(self) -> int:
        return sum(s.features for s in self.sources)


async def list_models(session: AsyncSession, viewer: User | None) -> list[ModelSummary]:
    """Every model with the source sets the viewer sees listed (public ones and their own)."""
    models = (await session.execute(select(Model).order_by(Model.id))).scalars().all()
    summaries = {m.id: ModelSummary(m) for m in models}
    shown: set[tuple[str, str]] = set()
    for source_set in (
        await session.execute(
            select(SourceSet)
            .where(visibility.listed(SourceSet.visibility, SourceSet.creator_id, viewer))
            .order_by(SourceSet.model_id, SourceSet.name)
        )
    ).scalars():
        shown.add((source_set.model_id, source_set.name))
        if source_set.model_id in summaries:
            summaries[source_set.model_id].source_sets.append(source_set)
    feature_counts = dict(
        ((m, s), n)
        for m, s, n in (
            await session.execute(
                select(Feature.model_id, Feature.source_id, func.count()).group_by(
                    Feature.model_id, Feature.source_id
                )
            )
        ).all()
    )
    explanation_counts = dict(
        ((m, s), n)
        for m, s, n in (
            await session.execute(
                select(Explanation.model_id, Explanation.source_id, func.count()).group_by(
                    Explanation.model_id, Explanation.source_id
                )
            )
        ).all()
    )
    for source in (
        await session.execute(select(Source).order_by(Source.model_id, Source.layer, Source.id))
    ).scalars():
        if source.model_id not in summaries or (source.model_id, source.set_name) not in shown:
            continue
        key = (source.model_id, source.id)
        summaries[source.model_id].sources.append(
            SourceSummary(
                id=source.id,
                set_name=source.set_name,
                hook_name=source.hook_name,
                layer=source.layer,
                architecture=source.architecture,
                d_sae=source.d_sae,
                features=feature_counts.get(key, 0),
                explanations=explanation_counts.get(key, 0),
                has_dashboards=source.has_dashboards,
                inference_enabled=source.inference_enabled,
            )
        )
    return list(summaries.values())


async def get_source(session: AsyncSession, model_id: str, source_id: str) -> Source:
    source = await session.get(Source, (model_id, source_id))
    if source is None:
        raise NotFound(f"no source {model_id}/{source_id}")
    return source


# The source page's table can be sorted by these columns.
SORTS = ("index", "density", "max_act", "score")


@dataclass
class FeatureRow:
    index: int
    frac_nonzero: float | None
    max_act: float | None
    score: float | None  # the best score of any of its explanations
    description: str | None


async def feature_table(
    session: AsyncSession,
    model_id: str,
    source_id: str,
    *,
    sort: str = "index",
    descending: bool = False,
    offset: int = 0,
    limit: int = 50,
) -> list[FeatureRow]:
    """One page of a source's features, sorted by index, density, max activation or the
    best explanation score (features without one last, whichever the direction)."""
    if sort not in SORTS:
        raise InvalidInput(f"sort by one of {', '.join(SORTS)}, not {sort!r}")
    best = (
        select(Explanation.index, func.max(ExplanationScore.value).label("score"))
        .join(ExplanationScore, ExplanationScore.explanation_id == Explanation.id)
        .where(Explanation.model_id == model_id, Explanation.source_id == source_id)
        .group_by(Explanation.index)
    )
    query = select(Feature.index, Feature.frac_nonzero, Feature.max_act).where(
        Feature.model_id == model_id, Feature.source_id == source_id
    )
    # Every score is aggregated only to sort by it. Otherwise the page's rows come first and
    # only their scores are read: joined to the whole source's aggregate, a planner whose
    # statistics predate the rows (a source just imported) re-ran that aggregate once per
    # row, seconds for a 65k source.
    if sort == "score":
        scores = best.subquery()
        query = query.outerjoin(scores, scores.c.index == Feature.index)
        column = scores.c.score
    else:
        column = {
            "index": Feature.index,
            "density": Feature.frac_nonzero,
            "max_act": Feature.max_act,
        }[sort]
    order = column.desc().nulls_last() if descending else column.asc().nulls_last()
    rows = (
        await session.execute(query.order_by(order, Feature.index).limit(limit).offset(offset))
    ).all()
    indices = [r[0] for r in rows]
    score_of = dict((await session.execute(best.where(Explanation.index.in_(indices)))).all())
    descriptions = await first_descriptions(session, [(model_id, source_id, i) for i in indices])
    return [
        FeatureRow(i, density, top, score_of.get(i), descriptions.get((model_id, source_id, i)))
        for i, density, top in rows
    ]
