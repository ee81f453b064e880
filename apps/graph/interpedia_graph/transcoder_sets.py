"""Transcoder sets: circuit-tracer's on-disk layout, quick sets to start with, registration.

A set is a folder in circuit-tracer's transcoder-set layout:

    config.yaml          model_kind: transcoder_set, feature_input_hook: mlp.hook_in,
                         feature_output_hook: mlp.hook_out, scan, transcoders: [files]
    layer_{i}.safetensors  W_enc [d_transcoder, d_model], W_dec [d_transcoder, d_model],
                         b_enc [d_transcoder], b_dec [d_model], optional
                         activation_function.threshold [d_transcoder] (JumpReLU), W_skip

`load_transcoder_set` is the one place a set is read, so any writer of this layout (the
trainer's transcoder training, a set downloaded by hand) plugs in unchanged. Each set is
registered in the database as a source set of type `transcoder` with one source per
layer (`{layer}-{set}`), so a feature node of a graph links to that feature's page.

Until trained sets exist, `fit_quick_transcoders` makes a cheap one from the model itself:
random unit encoder directions, a JumpReLU threshold per feature at the quantile that
makes it fire on `density` of a calibration text's tokens, and the decoder (with bias)
fitted by ridge regression to the MLP's real output. That takes seconds, gives sparse
features and a replacement model whose error nodes carry what the fit misses.
"""

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import InvalidInput, NotFound
from interpedia_db.models import Model, Source, SourceSet

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"
FEATURE_INPUT_HOOK = "mlp.hook_in"  # the output of the pre-MLP norm
FEATURE_OUTPUT_HOOK = "mlp.hook_out"  # the MLP's output
SET_TYPE = "transcoder"
SET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def layer_file(layer: int) -> str:
    return f"layer_{layer}.safetensors"


def load_transcoder_set(folder: Path, *, device: str = "cpu") -> Any:
    """circuit-tracer's `TranscoderSet` from a folder in its layout (weights in memory)."""
    from circuit_tracer.transcoder import load_transcoder_set as load_set

    config_path = Path(folder) / CONFIG_NAME
    if not config_path.is_file():
        raise NotFound(f"no transcoder set at {folder} (no {CONFIG_NAME})")
    config = yaml.safe_load(config_path.read_text())
    paths = {i: str(Path(folder) / name) for i, name in enumerate(config["transcoders"])}
    # Small sets are read faster whole than slice by slice from disk (circuit-tracer's lazy
    # loading is for sets larger than memory).
    return load_set(
        paths,
        scan=config.get("scan") or Path(folder).name,
        feature_input_hook=config["feature_input_hook"],
        feature_output_hook=config["feature_output_hook"],
        device=torch.device(device),
        dtype=torch.float32,
        lazy_encoder=False,
        lazy_decoder=False,
    )


def fit_of(folder: Path) -> dict[str, Any] | None:
    """How a quick set in `folder` was fitted (`interpedia_fit` in its config), if it was."""
    config_path = Path(folder) / CONFIG_NAME
    if not config_path.is_file():
        return None
    return yaml.safe_load(config_path.read_text()).get("interpedia_fit")


def write_transcoder_set(
    folder: Path,
    layers: list[dict[str, torch.Tensor]],
    *,
    scan: str,
    model_name: str,
    fit: dict[str, Any] | None = None,
) -> Path:
    """Write the layers and config into `folder`, whole or not at all (renamed into place).

    `fit` records how a quick set was made, so making it again the same way can reuse it.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        for i, tensors in enumerate(layers):
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / layer_file(i)))
        config = {
            "model_kind": "transcoder_set",
            "model_name": model_name,
            "scan": scan,
            "feature_input_hook": FEATURE_INPUT_HOOK,
            "feature_output_hook": FEATURE_OUTPUT_HOOK,
            "transcoders": [layer_file(i) for i in range(len(layers))],
            **({"interpedia_fit": fit} if fit else {}),
        }
        (tmp / CONFIG_NAME).write_text(yaml.safe_dump(config, sort_keys=False))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


# --- a quick set fitted in seconds ---------------------------------------------------------


def _mlp_modules(hf_model: Any, n_layers: int) -> list[tuple[Any, Any]]:
    """(module whose output is the MLP input, the MLP) per layer, by circuit-tracer's mapping."""
    from circuit_tracer.utils.tl_nnsight_mapping import get_mapping

    mapping = get_mapping(hf_model.config.architectures[0]).feature_hook_mapping

    def module(hook: str, layer: int) -> Any:
        pattern, io = mapping[hook]
        if io != "output":
            raise InvalidInput(f"{hook} of this architecture is not a module output")
        path = pattern.format(layer=layer).replace("[", ".").replace("]", "")
        return hf_model.get_submodule(path)

    return [
        (module(FEATURE_INPUT_HOOK, i), module(FEATURE_OUTPUT_HOOK, i)) for i in range(n_layers)
    ]


def calibration_batches(
    tokenizer: Any, corpus: Path, n_tokens: int, context: int
) -> list[torch.Tensor]:
    """[16, context] token batches from a folder of .txt, each row led by the special token
    attribution leaves out (so the fit sees positions as a graph does)."""
    from interpedia_graph.prompts import prompt_ids

    files = sorted(Path(corpus).glob("*.txt")) if Path(corpus).is_dir() else []
    if not files:
        raise InvalidInput(f"no .txt files in {corpus}: give --corpus a folder of text")
    rows: list[torch.Tensor] = []
    for path in files:
        ids = tokenizer(path.read_text(errors="replace"), add_special_tokens=False).input_ids
        for start in range(0, len(ids) - context, context - 1):
            rows.append(prompt_ids(tokenizer, ids[start : start + context - 1]))
            if len(rows) * (context - 1) >= n_tokens:
                return list(torch.stack(rows).split(16))
    return list(torch.stack(rows).split(16))


@torch.no_grad()
def collect_mlp_pairs(
    hf_model: Any, batches: Iterable[torch.Tensor]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Every layer's (MLP input, MLP output) over the token batches, position 0 left out."""
    n_layers = hf_model.config.num_hidden_layers
    ins: list[list[torch.Tensor]] = [[] for _ in range(n_layers)]
    outs: list[list[torch.Tensor]] = [[] for _ in range(n_layers)]
    handles = []
    for layer, (norm, mlp) in enumerate(_mlp_modules(hf_model, n_layers)):
        # [batch, seq, d_model] → [batch * (seq - 1), d_model]: position 0 is the special token
        # circuit-tracer leaves out of attribution.
        handles.append(
            norm.register_forward_hook(
                lambda m, a, out, i=layer: ins[i].append(out[:, 1:].flatten(0, 1))
            )
        )
        handles.append(
            mlp.register_forward_hook(
                lambda m, a, out, i=layer: outs[i].append(out[:, 1:].flatten(0, 1))
            )
        )
    try:
        for tokens in batches:
            hf_model(tokens)
    finally:
        for handle in handles:
            handle.remove()
    return [torch.cat(x) for x in ins], [torch.cat(y) for y in outs]


def fit_quick_transcoders(
    mlp_in: list[torch.Tensor],
    mlp_out: list[torch.Tensor],
    *,
    d_transcoder: int,
    density: float,
    seed: int = 0,
    ridge: float = 1e-3,
) -> list[dict[str, torch.Tensor]]:
    """One JumpReLU transcoder per layer from (MLP input, MLP output) pairs; see the module doc."""
    if not 0 < density < 1:
        raise InvalidInput(f"density is a fraction of tokens in (0, 1), not {density}")
    generator = torch.Generator().manual_seed(seed)
    layers = []
    for x, y in zip(mlp_in, mlp_out, strict=True):
        n, d_model = x.shape  # [n_tokens, d_model]
        w_enc = torch.randn(d_transcoder, d_model, generator=generator)
        w_enc /= w_enc.norm(dim=1, keepdim=True)  # [d_transcoder, d_model]
        pre = x @ w_enc.T  # [n_tokens, d_transcoder]
        threshold = torch.quantile(pre, 1 - density, dim=0).clamp_min(1e-6)  # [d_transcoder]
        acts = pre * (pre > threshold)  # [n_tokens, d_transcoder]
        b_dec = y.mean(0)  # [d_model]
        # Ridge regression of the centred MLP output on the activations:
        # (AᵀA + λ·tr(AᵀA)/d·I) W_dec = Aᵀ(Y - b_dec)
        gram = acts.T @ acts
        scale = ridge * gram.diagonal().mean().clamp_min(1e-12)
        w_dec = torch.linalg.solve(
            gram + scale * torch.eye(d_transcoder), acts.T @ (y - b_dec)
        )  # [d_transcoder, d_model]
        layers.append(
            {
                "W_enc": w_enc,
                "W_dec": w_dec,
                "b_enc": torch.zeros(d_transcoder),
                "b_dec": b_dec,
                "activation_function.threshold": threshold,
            }
        )
        logger.debug("layer fitted on %d tokens", n)
    return layers


def fraction_of_variance_unexplained(
    layer: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> float:
    """FVU of one transcoder on (MLP input, MLP output) pairs (a sanity figure for a fit)."""
    pre = x @ layer["W_enc"].T + layer["b_enc"]
    acts = pre * (pre > layer["activation_function.threshold"])
    error = y - (acts @ layer["W_dec"] + layer["b_dec"])
    return float(error.pow(2).sum() / (y - y.mean(0)).pow(2).sum())


# --- registration ------------------------------------------------------------------------


@dataclass(frozen=True)
class TranscoderSetRecord:
    name: str
    model_id: str
    folder: Path
    n_layers: int
    d_transcoder: int
    description: str


async def register_transcoder_set(
    session: AsyncSession,
    *,
    model_id: str,
    model_display_name: str,
    name: str,
    folder: Path,
    n_layers: int,
    d_model: int,
    d_transcoder: int,
    description: str,
) -> None:
    """Record the set (`folder` absolute) as a source set of the model, a source per layer.

    Idempotent. The sources are not inference-enabled: the inference service loads SAELens folders,
    and this layout is circuit-tracer's.
    """
    await session.execute(
        insert(Model)
        .values(id=model_id, display_name=model_display_name, layers=n_layers, d_model=d_model)
        .on_conflict_do_nothing()
    )
    set_values = {"description": description, "type": SET_TYPE, "allow_inference_search": False}
    await session.execute(
        insert(SourceSet)
        .values(model_id=model_id, name=name, **set_values)
        .on_conflict_do_update(index_elements=[SourceSet.model_id, SourceSet.name], set_=set_values)
    )
    for layer in range(n_layers):
        values = {
            "set_name": name,
            "hook_name": f"blocks.{layer}.{FEATURE_INPUT_HOOK}",
            "layer": layer,
            "architecture": "jumprelu_transcoder",
            "d_sae": d_transcoder,
            "weights_uri": str(folder / layer_file(layer)),
            "saelens_config": {
                "transcoder_set": str(folder),
                "hook_name": f"blocks.{layer}.{FEATURE_INPUT_HOOK}",
                "hook_name_out": f"blocks.{layer}.{FEATURE_OUTPUT_HOOK}",
                "d_in": d_model,
                "d_sae": d_transcoder,
                "d_out": d_model,
            },
            "inference_enabled": False,
        }
        statement = insert(Source).values(model_id=model_id, id=f"{layer}-{name}", **values)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[Source.model_id, Source.id], set_=values
            )
        )


async def transcoder_sets_of(session: AsyncSession, model_id: str) -> list[TranscoderSetRecord]:
    """The model's registered transcoder sets, by name."""
    rows = (
        await session.execute(
            select(SourceSet, Source)
            .join(
                Source,
                (Source.model_id == SourceSet.model_id) & (Source.set_name == SourceSet.name),
            )
            .where(SourceSet.model_id == model_id, SourceSet.type == SET_TYPE)
            .order_by(SourceSet.name, Source.layer)
        )
    ).all()
    sets: dict[str, TranscoderSetRecord] = {}
    layers: dict[str, int] = {}
    for source_set, source in rows:
        layers[source_set.name] = layers.get(source_set.name, 0) + 1
        sets.setdefault(
            source_set.name,
            TranscoderSetRecord(
                name=source_set.name,
                model_id=model_id,
                folder=Path(source.saelens_config.get("transcoder_set", "")),
                n_layers=0,
                d_transcoder=source.d_sae,
                description=source_set.description,
            ),
        )
    return [
        TranscoderSetRecord(**{**vars(record), "n_layers": layers[name]})
        for name, record in sets.items()
    ]


async def find_transcoder_set(
    session: AsyncSession, model_id: str, name: str | None, default: str | None
) -> TranscoderSetRecord:
    """The named set (else the configured default, else the first); a clear 404 otherwise."""
    sets = await transcoder_sets_of(session, model_id)
    wanted = name or default
    if wanted is None:
        if not sets:
            raise NotFound(
                f"model {model_id} has no transcoder set; make one with "
                "`interpedia-graph transcoders init --name tc-quick`"
            )
        return sets[0]
    for record in sets:
        if record.name == wanted:
            return record
    known = ", ".join(s.name for s in sets) or "none"
    raise NotFound(f"unknown transcoder set {wanted!r} of model {model_id} (registered: {known})")
