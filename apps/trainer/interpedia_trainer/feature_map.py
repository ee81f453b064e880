"""The feature map: a 2-D UMAP of a source's decoder directions, its clusters, stored per feature.

Features whose decoder directions point the same way write the same thing into the
residual stream, so a map of the directions under cosine distance puts related features
side by side (Neuronpedia's source pages show the same map). `compute_feature_map` lays
the directions out with umap-learn and clusters the layout; `store_feature_map` writes
each feature's `umap_x`, `umap_y`, `umap_cluster` and `umap_log_feature_sparsity` (log10
of its density, from the dashboards) and marks the source `has_umap`.

Two choices keep the job quick on a laptop. The k nearest neighbours are found exactly
with blocked matrix products in torch, not with pynndescent: its numba kernels compile
for minutes on a busy 2-core machine before doing seconds of work, while the exact
search over 65k directions of width 576 is a few seconds of BLAS. And HDBSCAN clusters
the 2-D layout (not the directions), which is cheap and finds the islands a reader sees.
"""

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION, INTEGER
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import InvalidInput
from interpedia_db.models import Feature, Source

logger = logging.getLogger(__name__)

N_NEIGHBORS = 15
MIN_DIST = 0.1


@dataclass
class FeatureMap:
    """Coordinates and cluster of every feature, in index order (cluster -1: noise)."""

    x: np.ndarray  # [d_sae] float32
    y: np.ndarray  # [d_sae] float32
    cluster: np.ndarray  # [d_sae] int64


def cosine_neighbours(
    directions: torch.Tensor,  # [n, d]
    k: int,
    block: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` nearest neighbours by cosine distance; each point is its own first.

    Returns (indices [n, k] int32, distances [n, k] float32), the `precomputed_knn`
    umap-learn accepts. The search multiplies in bfloat16 (about 4x the float32 speed on
    CPUs with AVX-512 BF16, and neighbours that close are interchangeable for a map);
    the distances of the neighbours found are then computed exactly. Blocks of `block`
    rows keep the similarity matrix at block × n, never n × n.
    """
    unit = torch.nn.functional.normalize(directions.float(), dim=1)  # zero rows stay zero
    coarse = unit.to(torch.bfloat16)
    n = unit.shape[0]
    k = min(k, n)
    indices = torch.empty(n, k, dtype=torch.long)
    distances = torch.empty(n, k)
    rows = torch.arange(n)
    for start in range(0, n, block):
        stop = min(start + block, n)
        similarity = (coarse[start:stop] @ coarse.T).float()  # [b, n]
        # Make each point its own nearest even when its direction is zero or duplicated.
        similarity[rows[start:stop] - start, rows[start:stop]] = 2.0
        found = similarity.topk(k, dim=1).indices  # [b, k]
        exact = (unit[start:stop, None, :] * unit[found]).sum(-1)  # [b, k]
        indices[start:stop] = found
        distances[start:stop] = (1.0 - exact).clamp_(min=0.0)
    distances[:, 0] = 0.0
    order = distances.argsort(dim=1, stable=True)
    return (
        indices.gather(1, order).to(torch.int32).numpy(),
        distances.gather(1, order).numpy(),
    )


def layout(
    directions: torch.Tensor,  # [n, d]
    *,
    n_neighbors: int = N_NEIGHBORS,
    min_dist: float = MIN_DIST,
    seed: int | None = None,
) -> np.ndarray:
    """2-D UMAP coordinates [n, 2] of the directions under cosine distance.

    `seed=None` lets umap-learn run its optimiser on every core (not reproducible); a
    seed makes it deterministic and single-threaded.
    """
    n = directions.shape[0]
    if n < 4:
        raise InvalidInput(f"a feature map needs at least 4 features, this source has {n}")
    import umap  # numba compiles on import: only the jobs that draw a map pay for it

    k = min(n_neighbors, n - 1)
    knn = cosine_neighbours(directions, k)
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=k,
        min_dist=min_dist,
        metric="cosine",
        precomputed_knn=(*knn, None),
        random_state=seed,
    )
    # umap-learn warns that precomputed neighbours without a search index cannot
    # transform new points (we never do) and that a seed disables parallelism (chosen).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="umap")
        coords = reducer.fit_transform(directions.float().numpy())
    return np.asarray(coords, dtype=np.float32)


def clusters(coords: np.ndarray, *, min_cluster_size: int | None = None) -> np.ndarray:
    """HDBSCAN clusters of the 2-D layout [n] (-1 for points in no cluster).

    The default minimum cluster size grows with the map (about 1 in 200 points, at least
    10) so a 65k map gets tens of clusters rather than thousands of specks.
    """
    from sklearn.cluster import HDBSCAN

    n = coords.shape[0]
    size = min_cluster_size or max(10, n // 200)
    if n < size * 2:
        return np.full(n, -1, dtype=np.int64)
    labels = HDBSCAN(min_cluster_size=size, min_samples=min(size, 10), copy=True).fit_predict(
        coords
    )
    return labels.astype(np.int64)


def compute_feature_map(
    directions: torch.Tensor, *, seed: int | None = None
) -> FeatureMap:  # [d_sae, d_in]
    """Layout and clusters of a source's decoder directions."""
    coords = layout(directions, seed=seed)
    return FeatureMap(coords[:, 0], coords[:, 1], clusters(coords))


# --- the directions of a source, and storing the map ----------------------------------------


async def check_mappable(session: AsyncSession, source: Source) -> None:
    """`InvalidInput` naming what is missing: dashboards (the rows the map is stored on)."""
    if not source.has_dashboards:
        raise InvalidInput(
            f"source {source.model_id}/{source.id} has no dashboards yet, and the map is "
            f"stored on its features' rows: run `interpedia dashboards --source {source.id}`"
        )
    if source.weights_uri:
        return
    missing = await session.scalar(
        select(func.count())
        .select_from(Feature)
        .where(
            Feature.model_id == source.model_id,
            Feature.source_id == source.id,
            Feature.vector.is_(None),
        )
    )
    if missing:
        raise InvalidInput(
            f"source {source.model_id}/{source.id} has no weights (weights_uri) and "
            f"{missing} of its features carry no decoder vector: nothing to map"
        )


async def stored_directions(session: AsyncSession, source: Source) -> torch.Tensor:
    """Decoder directions [d_sae, d_in] from the features' stored vectors (imports)."""
    rows = await session.execute(
        select(Feature.index, Feature.vector)
        .where(Feature.model_id == source.model_id, Feature.source_id == source.id)
        .order_by(Feature.index)
    )
    vectors = [vector for _, vector in rows.all()]
    if len({len(v) for v in vectors}) != 1:
        raise InvalidInput(f"the stored vectors of {source.id} do not all have one width")
    return torch.tensor(vectors, dtype=torch.float32)


_UPDATE = text(
    """
    UPDATE features AS f
    SET umap_x = v.x, umap_y = v.y, umap_cluster = v.cluster,
        umap_log_feature_sparsity = CASE WHEN f.frac_nonzero > 0
                                         THEN log(f.frac_nonzero) END
    FROM unnest(:indices, :xs, :ys, :clusters) AS v(index, x, y, cluster)
    WHERE f.model_id = :model_id AND f.source_id = :source_id AND f.index = v.index
    """
).bindparams(
    bindparam("indices", type_=ARRAY(INTEGER)),
    bindparam("xs", type_=ARRAY(DOUBLE_PRECISION)),
    bindparam("ys", type_=ARRAY(DOUBLE_PRECISION)),
    bindparam("clusters", type_=ARRAY(INTEGER)),
)


async def store_feature_map(
    session: AsyncSession, model_id: str, source_id: str, feature_map: FeatureMap
) -> int:
    """Write every feature's map columns in one statement; returns the rows updated.

    The source is `has_umap` only if every one of its features got coordinates.
    """
    n = len(feature_map.x)
    result = await session.execute(
        _UPDATE,
        {
            "indices": list(range(n)),
            "xs": feature_map.x.astype(float).tolist(),
            "ys": feature_map.y.astype(float).tolist(),
            "clusters": feature_map.cluster.astype(int).tolist(),
            "model_id": model_id,
            "source_id": source_id,
        },
    )
    updated: int = result.rowcount  # type: ignore[attr-defined]
    stored = await session.scalar(
        select(func.count())
        .select_from(Feature)
        .where(Feature.model_id == model_id, Feature.source_id == source_id)
    )
    await session.execute(
        update(Source)
        .where(Source.model_id == model_id, Source.id == source_id)
        .values(has_umap=updated == n and stored == n)
    )
    return updated


def directions_of(sae: Any) -> torch.Tensor:
    """The decoder directions [d_sae, d_in] of a loaded SAELens SAE."""
    return sae.W_dec.detach().float().cpu()
