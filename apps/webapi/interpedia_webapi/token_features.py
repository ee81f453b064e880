"""Top features by token: which features of a source a text lights up, token by token.

The inference service ranks features at each token by raw activation, which puts the
features that fire on nearly every token (on BOS, on " the") first and says nothing
about the text. This module re-ranks what inference returns, as Neuronpedia's
`/api/search-topk-by-token` does and further:

- special tokens (BOS, EOS) are left out when `ignoreBos` (the default);
- features denser than `densityThreshold` (share of dashboard tokens they fire on;
  Neuronpedia's default 0.01) are skipped, and 0 turns the filter off, as there;
- the rest are ranked by specificity: the activation as a share of the feature's own
  max activation, times the feature's rarity (log10 of 1 / density). A rare feature near
  its maximum says most about this token; a feature without dashboards counts at the
  threshold's rarity and its raw activation;
- each feature comes with its density, max activation and explanation.

To have enough left after filtering, the route asks inference for `candidates(n)` features
per token, more than the `n` it returns.
"""

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_db.models import Feature
from interpedia_webapi import dashboards

DEFAULT_DENSITY_THRESHOLD = 0.01
MIN_DENSITY = 1e-7  # rarity of a feature that fired once in ten million tokens


def candidates(num_results: int) -> int:
    """Features per token to ask inference for, so `num_results` survive the filter."""
    return max(64, 8 * num_results)


@dataclass
class FeatureStats:
    frac_nonzero: float | None
    max_act: float | None
    description: str | None


async def _stats(
    session: AsyncSession, model_id: str, source_id: str, indices: set[int]
) -> dict[int, FeatureStats]:
    if not indices:
        return {}
    rows = await session.execute(
        select(Feature.index, Feature.frac_nonzero, Feature.max_act).where(
            Feature.model_id == model_id,
            Feature.source_id == source_id,
            Feature.index.in_(sorted(indices)),
        )
    )
    found = {index: (density, top) for index, density, top in rows.all()}
    descriptions = await dashboards.first_descriptions(
        session, [(model_id, source_id, i) for i in found]
    )
    return {
        index: FeatureStats(
            found.get(index, (None, None))[0],
            found.get(index, (None, None))[1],
            descriptions.get((model_id, source_id, index)),
        )
        for index in indices
    }


def specificity(value: float, stats: FeatureStats, threshold: float) -> float:
    """Share of the feature's max activation × log10(1 / density) (see the module)."""
    relative = value / stats.max_act if stats.max_act and stats.max_act > 0 else value
    density = stats.frac_nonzero if stats.frac_nonzero else (threshold or DEFAULT_DENSITY_THRESHOLD)
    return relative * -math.log10(max(density, MIN_DENSITY))


async def rank_top_features(
    session: AsyncSession,
    model_id: str,
    source_id: str,
    answer: dict[str, Any],
    *,
    num_results: int,
    ignore_bos: bool,
    density_threshold: float,
) -> dict[str, Any]:
    """Inference's `activation/topk-by-token` answer, filtered and re-ranked (module doc),
    in Neuronpedia's response shape: `{source, results: [{position, token, isSpecial,
    topFeatures: [{featureIndex, activationValue, feature}]}]}` plus `tokens`."""
    positions = [p for p in answer.get("results", []) if not (ignore_bos and p.get("is_special"))]
    indices = {int(f["feature_index"]) for p in positions for f in p.get("top_features", [])}
    stats = await _stats(session, model_id, source_id, indices)
    results = []
    for position in positions:
        ranked = []
        for found in position.get("top_features", []):
            index, value = int(found["feature_index"]), float(found["activation_value"])
            feature = stats[index]
            if value <= 0:
                continue
            if density_threshold and (feature.frac_nonzero or 0.0) > density_threshold:
                continue
            ranked.append((specificity(value, feature, density_threshold), index, value, feature))
        ranked.sort(key=lambda item: (-item[0], item[1]))
        results.append(
            {
                "position": position.get("token_position"),
                "token": position.get("token"),
                "isSpecial": bool(position.get("is_special")),
                "topFeatures": [
                    {
                        "featureIndex": index,
                        "activationValue": value,
                        "specificity": round(score, 5),
                        "feature": {
                            "modelId": model_id,
                            "layer": source_id,
                            "index": str(index),
                            "frac_nonzero": feature.frac_nonzero,
                            "maxActApprox": feature.max_act,
                            "explanations": []
                            if feature.description is None
                            else [{"description": feature.description}],
                        },
                    }
                    for score, index, value, feature in ranked[:num_results]
                ],
            }
        )
    return {
        "source": source_id,
        "results": results,
        "tokens": answer.get("tokens", []),
        "densityThreshold": density_threshold,
    }
