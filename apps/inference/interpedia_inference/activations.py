"""Activation endpoints' logic: rank, slice and shape feature activations.

Each function takes an `Engine` and one prompt's request fields, gets its activations from
the micro-batcher (so concurrent calls share forwards) and builds the response.
"""

import asyncio
import bisect
import itertools

import torch

from interpedia_core.errors import InvalidInput
from interpedia_inference.engine import Engine
from interpedia_inference.schemas.activation import (
    ActivationAllResponse,
    ActivationSingleResponse,
    ActivationTopkByTokenResponse,
    ActivationValues,
    FeatureActivation,
    SourcePromptResult,
    TokenTopFeatures,
    TopFeature,
)


def _floats(values: torch.Tensor) -> list[float]:
    return [float(v) for v in values.tolist()]


async def activation_single(
    engine: Engine,
    prompt: str,
    source: str | None,
    index: str | int | None,
    vector: list[float] | None,
    hook: str | None,
) -> ActivationSingleResponse:
    """One feature's (or a custom vector's) value on every token of the prompt."""
    by_feature = source is not None or index is not None
    by_vector = vector is not None or hook is not None
    if by_feature == by_vector:
        raise InvalidInput("give either source and index, or vector and hook")
    if by_feature:
        if source is None or index is None:
            raise InvalidInput("source and index go together")
        sae = await engine.sae(source)
        feature = engine.feature_index(index)
        sae.check_index(feature)
        tokens = engine.tokenize(prompt)
        result = await engine.activations(tokens, [sae])
        values = result.features[sae.source_id][:, feature]  # [seq]
    else:
        if vector is None or hook is None:
            raise InvalidInput("vector and hook go together")
        direction = engine.check_vector(vector, engine.hook_width(hook), "vector")
        tokens = engine.tokenize(prompt)
        result = await engine.activations(tokens, [], {hook})
        values = result.hooks[hook] @ direction  # [seq]
    max_index = int(torch.argmax(values))
    return ActivationSingleResponse(
        activation=ActivationValues(
            values=_floats(values), max_value=float(values[max_index]), max_value_index=max_index
        ),
        tokens=engine.token_strings(tokens),
        tokens_is_special=engine.is_special(tokens),
    )


async def activation_all(
    engine: Engine,
    prompt: str,
    source_set: str,
    selected_sources: list[str],
    sort_by_token_indexes: list[int],
    ignore_bos: bool,
    feature_filter: list[int] | None,
    num_results: int,
) -> ActivationAllResponse:
    """The strongest features of a source set over the prompt, with per-token values."""
    saes = await engine.sources_of_set(source_set, selected_sources)
    tokens = engine.tokenize(prompt)
    for position in sort_by_token_indexes:
        if not 0 <= position < len(tokens):
            raise InvalidInput(
                f"sort_by_token_indexes has {position}; the prompt has {len(tokens)} tokens"
            )
    result = await engine.activations(tokens, saes)
    skip_bos = ignore_bos and engine.is_bos(tokens)
    # All sources side by side, so ranking and reading the winners are a few whole-tensor
    # operations rather than several small ones per feature (this runs on the event loop).
    per_source = [result.features[sae.source_id] for sae in saes]
    acts = per_source[0] if len(saes) == 1 else torch.cat(per_source, dim=1)  # [seq, Σd_sae]
    offsets = list(itertools.accumulate((sae.d_sae for sae in saes), initial=0))
    score = _rank_scores(acts, sort_by_token_indexes, skip_bos)  # [Σd_sae]
    if feature_filter is not None:
        keep = torch.zeros_like(score, dtype=torch.bool)
        for start, sae in zip(offsets, saes, strict=False):  # offsets has one more entry
            keep[[start + i for i in feature_filter if 0 <= i < sae.d_sae]] = True
        score = score.masked_fill(~keep, -torch.inf)
    top_values, top_flat = torch.topk(score, min(num_results, score.numel()))
    top_flat = top_flat[top_values > 0]  # only features that fire
    columns = acts[:, top_flat]  # [seq, n]
    shown = columns.clone()
    if skip_bos:
        shown[0] = 0.0
    max_index = shown.argmax(dim=0)  # [n]
    activations = []
    for flat, values, total, peak, at in zip(
        top_flat.tolist(),
        columns.T.tolist(),
        columns.sum(dim=0).tolist(),
        shown.gather(0, max_index[None])[0].tolist(),
        max_index.tolist(),
        strict=True,
    ):
        which = bisect.bisect_right(offsets, flat) - 1
        activations.append(
            FeatureActivation(
                source=saes[which].source_id,
                index=flat - offsets[which],
                values=values,
                sum_values=total,
                max_value=peak,
                max_value_index=at,
            )
        )
    counts = [(source_acts > 0).sum(dim=-1).float().tolist() for source_acts in per_source]
    return ActivationAllResponse(
        activations=activations, tokens=engine.token_strings(tokens), counts=counts
    )


def _rank_scores(acts: torch.Tensor, positions: list[int], skip_bos: bool) -> torch.Tensor:
    """Each feature's score: its max over the prompt, or its sum over the chosen positions."""
    first = 1 if skip_bos else 0
    if positions:
        rows = [p for p in positions if p >= first]
        return acts[rows].sum(dim=0)  # no rows (only BOS chosen): zeros
    if acts.shape[0] <= first:
        return torch.zeros(acts.shape[1])
    return acts[first:].amax(dim=0)


async def activation_topk_by_token(
    engine: Engine, prompt: str, source: str, top_k: int, ignore_bos: bool
) -> ActivationTopkByTokenResponse:
    """For every token position, its `top_k` features and their values."""
    sae = await engine.sae(source)
    tokens = engine.tokenize(prompt)
    result = await engine.activations(tokens, [sae])
    acts = result.features[sae.source_id]  # [seq, d_sae]
    values, indices = torch.topk(acts, min(top_k, sae.d_sae), dim=-1)  # [seq, k]
    strings = engine.token_strings(tokens)
    special = engine.is_special(tokens)
    start = 1 if ignore_bos and engine.is_bos(tokens) else 0
    results = [
        TokenTopFeatures(
            token_position=pos,
            token=strings[pos],
            is_special=special[pos],
            top_features=[
                TopFeature(feature_index=int(i), activation_value=float(v))
                for v, i in zip(values[pos].tolist(), indices[pos].tolist(), strict=True)
            ],
        )
        for pos in range(start, len(tokens))
    ]
    return ActivationTopkByTokenResponse(results=results, tokens=strings)


async def activation_source(
    engine: Engine, prompts: list[str], source: str
) -> list[SourcePromptResult]:
    """For each prompt: its tokens and, per active feature, [[token_index, value], ...]."""
    sae = await engine.sae(source)
    token_lists = [engine.tokenize(p) for p in prompts]
    results = await asyncio.gather(*(engine.activations(t, [sae]) for t in token_lists))
    out = []
    for tokens, result in zip(token_lists, results, strict=True):
        acts = result.features[sae.source_id]  # [seq, d_sae]
        positions, features = torch.nonzero(acts > 0, as_tuple=True)
        active: dict[str, list[list[float]]] = {}
        for pos, feat in zip(positions.tolist(), features.tolist(), strict=True):
            active.setdefault(str(feat), []).append([pos, float(acts[pos, feat])])
        out.append(SourcePromptResult(tokens=engine.token_strings(tokens), activeFeatures=active))
    return out
