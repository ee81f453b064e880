"""Models, source sets and sources, with how many features each holds (home page, model list)."""

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import NotFound
from interpedia_db.models import Explanation, Feature, Model, Source, SourceSet


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


async def list_models(session: AsyncSession) -> list[ModelSummary]:
    models = (await session.execute(select(Model).order_by(Model.id))).scalars().all()
    summaries = {m.id: ModelSummary(m) for m in models}
    for source_set in (
        await session.execute(select(SourceSet).order_by(SourceSet.model_id, SourceSet.name))
    ).scalars():
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
        if source.model_id not in summaries:
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
