"""Writing dashboards and trained SAEs into the database.

Dashboards are written per feature range, and rewriting a range replaces it
(activations of those features are deleted first, feature rows are upserted),
so a dashboards job that is retried after a crash leaves one copy, not two. A
source counts as having dashboards only once every one of its features is stored.
"""

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import InvalidInput
from interpedia_db.bulk import ActivationRow, copy_activations
from interpedia_db.models import Activation, Feature, Model, Source, SourceSet
from interpedia_runtime.models import layer_of_hook
from interpedia_trainer import runs
from interpedia_trainer.dashboards import ActivationExample, FeatureDashboard

TokenStrings = Callable[[list[int]], list[str]]


def read_sae_config(sae_path: str) -> dict[str, Any]:
    return json.loads((Path(sae_path) / "cfg.json").read_text())


def vocabulary_strings(tokenizer: Any) -> TokenStrings:
    """Token id → its text, from a table decoded once (per-token decoding is far too slow)."""
    table = [tokenizer.decode([i]) for i in range(len(tokenizer))]
    return lambda ids: [table[i] for i in ids]


def _r(value: float) -> float:
    return round(float(value), 5)  # Neuronpedia's precision; keeps rows small


def feature_row(
    model_id: str, source_id: str, hook_name: str, d: FeatureDashboard, token_strings: TokenStrings
) -> dict[str, Any]:
    return {
        "model_id": model_id,
        "source_id": source_id,
        "index": d.index,
        "max_act": _r(d.max_activation),
        "frac_nonzero": float(d.frac_nonzero),
        "pos_str": token_strings(d.logit_pos_tokens),
        "pos_values": list(map(_r, d.logit_pos_values)),
        "neg_str": token_strings(d.logit_neg_tokens),
        "neg_values": list(map(_r, d.logit_neg_values)),
        "freq_hist_heights": [float(h) for h in d.freq_hist_heights],
        "freq_hist_values": list(map(_r, d.freq_hist_values)),
        "logits_hist_heights": [float(h) for h in d.logit_hist_heights],
        "logits_hist_values": list(map(_r, d.logit_hist_values)),
        "topk_cos_sim_indices": list(d.cossim_indices),
        "topk_cos_sim_values": list(map(_r, d.cossim_values)),
        "hook_name": hook_name,
    }


def activation_row(
    model_id: str,
    source_id: str,
    index: int,
    example: ActivationExample,
    token_strings: TokenStrings,
    data_source: str,
) -> ActivationRow:
    return ActivationRow(
        model_id=model_id,
        source_id=source_id,
        index=index,
        tokens=token_strings(example.tokens),
        values=list(map(_r, example.values)),
        max_value=_r(example.max_value),
        max_value_token_index=example.max_value_token_index,
        min_value=_r(min(example.values)) if example.values else None,
        bin_min=None if example.bin_min is None else _r(example.bin_min),
        bin_max=None if example.bin_max is None else _r(example.bin_max),
        bin_contains=None,
        data_index=example.prompt_index,
        data_source=data_source,
    )


async def store_dashboards(
    session: AsyncSession,
    model_id: str,
    source_id: str,
    hook_name: str,
    dashboards: Sequence[FeatureDashboard],
    token_strings: TokenStrings,
    data_source: str,
) -> int:
    """Replace the dashboards of these features; returns the activation rows written."""
    if not dashboards:
        return 0
    indices = [d.index for d in dashboards]
    features = [feature_row(model_id, source_id, hook_name, d, token_strings) for d in dashboards]
    # asyncpg binds at most 32,767 parameters a statement (about 17 a row here).
    rows_per_statement = 1000
    for first in range(0, len(features), rows_per_statement):
        statement = insert(Feature).values(features[first : first + rows_per_statement])
        updated = {
            c: statement.excluded[c]
            for c in features[0]
            if c not in ("model_id", "source_id", "index")
        }
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[Feature.model_id, Feature.source_id, Feature.index], set_=updated
            )
        )
    await session.execute(
        delete(Activation).where(
            Activation.model_id == model_id,
            Activation.source_id == source_id,
            Activation.index.in_(indices),
        )
    )
    activations = [
        activation_row(model_id, source_id, d.index, example, token_strings, data_source)
        for d in dashboards
        for example in [*d.top_examples, *d.bin_examples]
    ]
    # COPY: a whole source's examples are ~100k rows of token arrays
    await copy_activations(session, activations)
    return len(activations)


async def mark_dashboards_done(
    session: AsyncSession,
    model_id: str,
    source_id: str,
    *,
    num_prompts: int | None = None,
    num_tokens_in_prompt: int | None = None,
    dataset: str | None = None,
) -> bool:
    """Flag the source browsable once every feature has a row; record what they came from.

    Dashboards arrive in feature-range jobs, so the flag waits for the last range:
    `has_dashboards` is true when features 0..d_sae-1 are all stored. The source row is
    locked first, so of two ranges finishing at once the second to lock counts the
    first's committed rows (without the lock each could miss the other and neither
    would set the flag). Returns whether the source is complete.
    """
    source = await runs.get_source(session, model_id, source_id, for_update=True)
    stored = await session.scalar(
        select(func.count())
        .select_from(Feature)
        .where(
            Feature.model_id == model_id,
            Feature.source_id == source_id,
            Feature.index < source.d_sae,
        )
    )
    source.has_dashboards = (stored or 0) >= source.d_sae
    for key, value in (
        ("num_prompts", num_prompts),
        ("num_tokens_in_prompt", num_tokens_in_prompt),
        ("dataset", dataset),
    ):
        if value is not None:
            setattr(source, key, value)
    return source.has_dashboards


async def register_source(
    session: AsyncSession,
    *,
    model_id: str,
    model_display_name: str,
    n_layers: int,
    d_model: int,
    source_set: str,
    sae_path: str,
    num_prompts: int | None = None,
    dataset: str | None = None,
) -> Source:
    """Make a trained SAE folder a source of its model (creating model and set if new)."""
    cfg = read_sae_config(sae_path)
    hook_name = cfg.get("metadata", {}).get("hook_name") or cfg["hook_name"]
    layer = layer_of_hook(hook_name)
    if layer is None:
        raise InvalidInput(f"the SAE's hook {hook_name!r} is not a per-layer hook")
    await session.execute(
        insert(Model)
        .values(
            id=model_id,
            display_name=model_display_name,
            layers=n_layers,
            d_model=d_model,
        )
        .on_conflict_do_nothing()
    )
    await session.execute(
        insert(SourceSet)
        .values(
            model_id=model_id,
            name=source_set,
            description=f"SAEs trained by Interpedia ({source_set})",
        )
        .on_conflict_do_nothing()
    )
    values = {
        "set_name": source_set,
        "hook_name": hook_name,
        "layer": layer,
        "architecture": cfg.get("architecture", "standard"),
        "d_sae": int(cfg["d_sae"]),
        "weights_uri": sae_path,
        "saelens_config": cfg,
        "num_prompts": num_prompts,
        "dataset": dataset,
    }
    source_id = f"{layer}-{source_set}"
    statement = insert(Source).values(model_id=model_id, id=source_id, **values)
    await session.execute(
        statement.on_conflict_do_update(index_elements=[Source.model_id, Source.id], set_=values)
    )
    return await session.get(Source, (model_id, source_id), populate_existing=True)
