"""Registering a transcoder set as a source set of type `transcoder`, one source per layer.

Shared by the graph service (quick sets it fits) and the trainer (sets it trains), so a
feature node of a graph and the feature page of the same layer's source are one feature.
A layer whose set folder holds a SAELens copy (`interpedia_formats.transcoder_set.
saelens_layer_dir`) is registered with that folder as its weights and inference enabled:
the inference service then serves it like any SAE (activations, dashboards, steering).
"""

import json
from pathlib import Path

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_db.models import Model, Source, SourceSet
from interpedia_formats.transcoder_set import (
    input_hook,
    layer_file,
    output_hook,
    saelens_layer_dir,
)

SET_TYPE = "transcoder"


async def register_transcoder_set(
    session: AsyncSession,
    *,
    model_id: str,
    model_display_name: str,
    name: str,
    folder: Path,
    layers: list[int],
    n_model_layers: int,
    d_model: int,
    d_transcoder: int,
    description: str,
) -> list[str]:
    """Record the set (`folder` absolute) as a source set of the model, a source per layer.

    Idempotent; returns the source ids (`{layer}-{name}`). Layers without a SAELens copy
    are not inference-enabled: the inference service loads SAELens folders only.
    """
    await session.execute(
        insert(Model)
        .values(
            id=model_id, display_name=model_display_name, layers=n_model_layers, d_model=d_model
        )
        .on_conflict_do_nothing()
    )
    saelens = all(saelens_layer_dir(folder, layer).is_dir() for layer in layers)
    set_values = {"description": description, "type": SET_TYPE, "allow_inference_search": saelens}
    await session.execute(
        insert(SourceSet)
        .values(model_id=model_id, name=name, **set_values)
        .on_conflict_do_update(index_elements=[SourceSet.model_id, SourceSet.name], set_=set_values)
    )
    ids = []
    for layer in layers:
        config = {
            "hook_name": input_hook(layer),
            "hook_name_out": output_hook(layer),
            "d_in": d_model,
            "d_sae": d_transcoder,
            "d_out": d_model,
        }
        architecture, weights = "jumprelu_transcoder", str(folder / layer_file(layer))
        if saelens:
            layer_dir = saelens_layer_dir(folder, layer)
            config = {**json.loads((layer_dir / "cfg.json").read_text()), **config}
            architecture, weights = config["architecture"], str(layer_dir)
        values = {
            "set_name": name,
            "hook_name": input_hook(layer),
            "layer": layer,
            "architecture": architecture,
            "d_sae": d_transcoder,
            "weights_uri": weights,
            "saelens_config": {**config, "transcoder_set": str(folder)},
            "inference_enabled": saelens,
        }
        source_id = f"{layer}-{name}"
        statement = insert(Source).values(model_id=model_id, id=source_id, **values)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[Source.model_id, Source.id], set_=values
            )
        )
        ids.append(source_id)
    return ids
