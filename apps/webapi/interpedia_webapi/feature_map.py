"""A source's feature map as the pages and clients read it (the trainer computes and stores it).

`map_coordinates` is what the source page needs to draw (index, coordinates, cluster,
density), which `pack_coordinates` turns into little-endian 32-bit arrays the page views
as typed arrays without parsing, so the map is painted before any explanation arrives;
`map_explanations` is what the page fetches next for hover, search and cluster labels
(each feature's alphabetically first explanation). `map_points` is both in columns, and
`umap_explanations` Neuronpedia's `/api/umap` answer, one object per feature keyed by
source.

Each query answers one row of index-ordered arrays rather than a row per feature: the
driver decodes an array in C, where building 65k row objects cost more than the query.
"""

import math
import sys
from array import array
from dataclasses import dataclass

from sqlalchemy import REAL, ColumnElement, cast, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import NotFound
from interpedia_db.models import Explanation, Feature
from interpedia_webapi import catalog


@dataclass
class MapCoordinates:
    """One entry per feature with coordinates, in index order."""

    index: list[int]
    x: list[float]
    y: list[float]
    cluster: list[int]  # -1: in no cluster
    log_density: list[float | None]  # None: never fired


@dataclass
class MapPoints(MapCoordinates):
    """The coordinates (rounded for JSON) with each feature's explanation, if any."""

    description: list[str | None]
    explanation_id: list[int | None]


def _by_index(column: ColumnElement) -> ColumnElement:
    return func.array_agg(aggregate_order_by(column, Feature.index))


async def _coordinates(session: AsyncSession, model_id: str, source_id: str) -> MapCoordinates:
    # float4: far finer than a pixel, and what the page draws with.
    row = (
        await session.execute(
            select(
                _by_index(Feature.index),
                _by_index(cast(Feature.umap_x, REAL)),
                _by_index(cast(Feature.umap_y, REAL)),
                _by_index(func.coalesce(Feature.umap_cluster, -1)),
                _by_index(cast(Feature.umap_log_feature_sparsity, REAL)),
            ).where(
                Feature.model_id == model_id,
                Feature.source_id == source_id,
                Feature.umap_x.is_not(None),
            )
        )
    ).one()
    # array_agg over no rows is NULL
    return MapCoordinates(*(list(column or []) for column in row))


@dataclass
class MapExplanations:
    """Each explained feature's first explanation, in index order."""

    index: list[int]
    explanation_id: list[int]
    description: list[str]


async def _explanations(session: AsyncSession, model_id: str, source_id: str) -> MapExplanations:
    first = (
        select(Explanation.index, Explanation.id, Explanation.description)
        .where(
            Explanation.model_id == model_id,
            Explanation.source_id == source_id,
            Explanation.visibility == "public",  # one map is served to everyone
        )
        .distinct(Explanation.index)
        .order_by(Explanation.index, Explanation.description, Explanation.id)
        .subquery()
    )
    row = (
        await session.execute(
            select(
                func.array_agg(aggregate_order_by(first.c.index, first.c.index)),
                func.array_agg(aggregate_order_by(first.c.id, first.c.index)),
                func.array_agg(aggregate_order_by(first.c.description, first.c.index)),
            )
        )
    ).one()
    return MapExplanations(*(list(column or []) for column in row))


def _explained(coordinates: MapCoordinates, explanations: MapExplanations) -> MapPoints:
    by_index = {
        index: (explanation_id, text)
        for index, explanation_id, text in zip(
            explanations.index, explanations.explanation_id, explanations.description, strict=True
        )
    }
    found = [by_index.get(i, (None, None)) for i in coordinates.index]
    # Three decimals are far finer than a pixel and keep a 65k map's JSON small.
    return MapPoints(
        index=coordinates.index,
        x=[round(v, 3) for v in coordinates.x],
        y=[round(v, 3) for v in coordinates.y],
        cluster=coordinates.cluster,
        log_density=[None if v is None else round(v, 3) for v in coordinates.log_density],
        description=[text for _, text in found],
        explanation_id=[explanation_id for explanation_id, _ in found],
    )


async def _mapped(session: AsyncSession, model_id: str, source_id: str) -> None:
    """`NotFound` saying how to make a map if the source has none."""
    source = await catalog.get_source(session, model_id, source_id)
    if not source.has_umap:
        raise NotFound(
            f"source {model_id}/{source_id} has no feature map yet: it is queued when its "
            f"dashboards finish, or run `interpedia umap --model {model_id} --source {source_id}`"
        )


async def map_coordinates(session: AsyncSession, model_id: str, source_id: str) -> MapCoordinates:
    """Every mapped feature of a source, without explanations."""
    await _mapped(session, model_id, source_id)
    return await _coordinates(session, model_id, source_id)


async def map_explanations(session: AsyncSession, model_id: str, source_id: str) -> MapExplanations:
    """The explanations of a mapped source, without coordinates."""
    await _mapped(session, model_id, source_id)
    return await _explanations(session, model_id, source_id)


async def map_points(session: AsyncSession, model_id: str, source_id: str) -> MapPoints:
    """`map_coordinates` with each feature's explanation."""
    await _mapped(session, model_id, source_id)
    coordinates = await _coordinates(session, model_id, source_id)
    return _explained(coordinates, await _explanations(session, model_id, source_id))


def pack_coordinates(coordinates: MapCoordinates) -> bytes:
    """index (int32), x, y (float32), cluster (int32), log10 density (float32, NaN: never
    fired): n little-endian entries each, back to back, 20 bytes per feature."""
    columns = [
        array("i", coordinates.index),
        array("f", coordinates.x),
        array("f", coordinates.y),
        array("i", coordinates.cluster),
        array("f", [math.nan if v is None else v for v in coordinates.log_density]),
    ]
    if sys.byteorder == "big":
        for column in columns:
            column.byteswap()
    return b"".join(column.tobytes() for column in columns)


async def umap_explanations(
    session: AsyncSession, model_id: str, source_ids: list[str]
) -> dict[str, list[dict[str, object]]]:
    """Neuronpedia's `/api/umap`: per source, each mapped feature with its explanation.

    A source without a map answers an empty list, as Neuronpedia's does.
    """
    out: dict[str, list[dict[str, object]]] = {}
    for source_id in source_ids:
        await catalog.get_source(session, model_id, source_id)
        coordinates = await _coordinates(session, model_id, source_id)
        points = _explained(coordinates, await _explanations(session, model_id, source_id))
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
