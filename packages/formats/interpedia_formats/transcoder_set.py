"""circuit-tracer's transcoder-set layout: the one definition the trainer and graph share.

A set is a folder:

    config.yaml            model_kind: transcoder_set, model_name, scan,
                           feature_input_hook: mlp.hook_in, feature_output_hook: mlp.hook_out,
                           transcoders: [layer_{i}.safetensors, ...]
    layer_{i}.safetensors  W_enc [d_transcoder, d_model], W_dec [d_transcoder, d_model],
                           b_enc [d_transcoder], b_dec [d_model], optional
                           activation_function.threshold [d_transcoder] (JumpReLU),
                           W_skip [d_model, d_model]
    saelens/layer_{i}/     optional: the same layer as a SAELens transcoder folder (cfg.json,
                           sae_weights.safetensors), written by the trainer so the inference
                           service loads it with `SAE.load_from_disk` like any SAE

The trainer writes sets, the graph service reads them with circuit-tracer, the database
registers them; all three take the file names and hook names from here. This module
needs only torch, safetensors and yaml (no transformers), so both environments import it.
"""

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file

from interpedia_core.folders import replacing_folder

CONFIG_NAME = "config.yaml"
FEATURE_INPUT_HOOK = "mlp.hook_in"  # the output of the pre-MLP norm
FEATURE_OUTPUT_HOOK = "mlp.hook_out"  # the MLP's output
SAELENS_DIR = "saelens"
_LAYER_FILE = re.compile(r"^layer_(\d+)\.safetensors$")


def layer_file(layer: int) -> str:
    return f"layer_{layer}.safetensors"


def saelens_layer_dir(folder: Path, layer: int) -> Path:
    """Where the SAELens copy of one layer lives inside a set (may be absent)."""
    return Path(folder) / SAELENS_DIR / f"layer_{layer}"


def input_hook(layer: int) -> str:
    """The model hook a layer's transcoder reads (TransformerLens / bridge naming)."""
    return f"blocks.{layer}.{FEATURE_INPUT_HOOK}"


def output_hook(layer: int) -> str:
    """The model hook a layer's transcoder predicts."""
    return f"blocks.{layer}.{FEATURE_OUTPUT_HOOK}"


def read_set_config(folder: Path) -> dict[str, Any] | None:
    """The set's config.yaml, or None when `folder` holds no set."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        return None
    return yaml.safe_load(path.read_text())


def layer_paths(folder: Path, config: dict[str, Any]) -> dict[int, Path]:
    """{layer: file} of a set; a file named `layer_{i}` is layer i, others count in order."""
    paths: dict[int, Path] = {}
    for position, name in enumerate(config["transcoders"]):
        match = _LAYER_FILE.match(Path(name).name)
        paths[int(match.group(1)) if match else position] = Path(folder) / name
    return paths


def write_transcoder_set(
    folder: Path,
    layers: Mapping[int, dict[str, torch.Tensor]] | list[dict[str, torch.Tensor]],
    *,
    scan: str,
    model_name: str,
    extra_config: dict[str, Any] | None = None,
    write_more: Callable[[Path], None] | None = None,
) -> Path:
    """Write the layers and config into `folder`, whole or not at all (renamed into place).

    `layers` maps layer → tensors (a list means layers 0..n-1). `extra_config` adds keys to
    config.yaml (how a set was made); `write_more(tmp)` adds files to the folder before it
    is renamed into place (the trainer's SAELens copies), so a reader never sees half a set.
    """
    by_layer = dict(enumerate(layers)) if isinstance(layers, list) else dict(layers)
    folder = Path(folder)
    with replacing_folder(folder) as tmp:
        for layer, tensors in sorted(by_layer.items()):
            tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
            save_file(tensors, str(tmp / layer_file(layer)))
        config = {
            "model_kind": "transcoder_set",
            "model_name": model_name,
            "scan": scan,
            "feature_input_hook": FEATURE_INPUT_HOOK,
            "feature_output_hook": FEATURE_OUTPUT_HOOK,
            "transcoders": [layer_file(layer) for layer in sorted(by_layer)],
            **(extra_config or {}),
        }
        (tmp / CONFIG_NAME).write_text(yaml.safe_dump(config, sort_keys=False))
        if write_more is not None:
            write_more(tmp)
    return folder
