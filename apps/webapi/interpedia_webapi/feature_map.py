"""A source's feature map as the pages and clients read it (the trainer computes and stores it).

Two shapes of the same rows: `map_points` is columnar (one array per field, one entry per
feature), what the source page's scatter loads in one request and puts straight into
typed arrays; `umap_explanations` is Neuronpedia's `/api/umap` answer, one object per
feature keyed by source. Each feature carries one explanation (the alphabetically first
of several), so hover and search need no second request.
"""

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import NotFound
from interpedia_db.models import Explanation, Feature
from interpedia_webapi import catalog


@dataclass
class MapPoints:
    """One entry per feature with coordinates, in index order."""

    index: list[int] = field(default_factory=list)
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    cluster: list[int] = field(default_factory=list)  # -1: in no cluster
    log_density: list[float | None] = field(default_factory=list)  # None: never fired
    description: list[str | None] = field(default_factory=list)
    explanation_id: list[int | None] = field(default_factory=list)


async def _rows(session: AsyncSession, model_id: str, source_id: str) -> MapPoints:
    # Two plain queries merged here rather than a join: right after the map is stored the
    # planner's statistics still say every `umap_x` is NULL, and it then joins 65k rows to
    # 65k by nested loop (minutes); each query alone is an index-ordered scan.
    explanations = await session.execute(
        select(Explanation.index, Explanation.id, Explanation.description)
        .where(Explanation.model_id == model_id, Explanation.source_id == source_id)
        .distinct(Explanation.index)
        .order_by(Explanation.index, Explanation.description, Explanation.id)
    )
    first = {index: (explanation_id, text) for index, explanation_id, text in explanations.all()}
    rows = await session.execute(
        select(
            Feature.index,
            Feature.umap_x,
            Feature.umap_y,
            Feature.umap_cluster,
            Feature.umap_log_feature_sparsity,
        )
        .where(
            Feature.model_id == model_id,
            Feature.source_id == source_id,
            Feature.umap_x.is_not(None),
        )
        .order_by(Feature.index)
    )
    points = MapPoints()
    for index, x, y, cluster, log_density in rows.all():
        explanation_id, description = first.get(index, (None, None))
        points.index.append(index)
        # Three decimals are far finer than a pixel and keep a 65k map's JSON small.
        points.x.append(round(x, 3))
        points.y.append(round(y, 3))
        points.cluster.append(-1 if cluster is None else cluster)
        points.log_density.append(None if log_density is None else round(log_density, 3))
        points.description.append(description)
        points.explanation_id.append(explanation_id)
    return points


async def map_points(session: AsyncSession, model_id: str, source_id: str) -> MapPoints:
    """Every mapped feature of a source; `NotFound` saying how to make a map if none."""
    source = await catalog.get_source(session, model_id, source_id)
    if not source.has_umap:
        raise NotFound(
            f"source {model_id}/{source_id} has no feature map yet: it is queued when its "
            f"dashboards finish, or run `interpedia umap --model {model_id} --source {source_id}`"
        )
    return await _rows(session, model_id, source_id)


async def umap_explanations(
    session: AsyncSession, model_id: str, source_ids: list[str]
) -> dict[str, list[dict[str, object]]]:
    """Neuronpedia's `/api/umap`: per source, each mapped feature with its explanation.

    A source without a map answers an empty list, as Neuronpedia's does.
    """
    out: dict[str, list[dict[str, object]]] = {}
    for source_id in source_ids:
        await catalog.get_source(session, model_id, source_id)
        points = await _rows(session, model_id, source_id)
        out[source_id] = [
            {
                "id": None if points.explanation_id[i] is None else str(points.explanation_id[i]),
                "modelId": model_id,
                "layer": source_id,
                "index": str(points.index[i]),
                "description": points.description[i],
                "umap_cluster": points.cluster[i],
                "umap_x": points.x[i],
                "umap_y": points.y[i],
                "umap_log_feature_sparsity": points.log_density[i],
            }
            for i in range(len(points.index))
        ]
    return out
