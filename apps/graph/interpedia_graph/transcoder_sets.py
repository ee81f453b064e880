"""Transcoder sets in the graph service: load them, fit quick ones, find registered ones.

The on-disk layout (circuit-tracer's transcoder-set layout) is defined once, in
`interpedia_formats.transcoder_set`, and registration in `interpedia_db.transcoder_sets`:
the trainer writes and registers the sets it trains with the same code. Each set is a
source set of type `transcoder` with one source per layer (`{layer}-{set}`), so a feature
node of a graph links to that feature's page.

`load_transcoder_set` is the one place a set is read, so any writer of the layout (the
trainer's transcoder training, a set downloaded by hand) plugs in unchanged.

Until trained sets exist, `fit_quick_transcoders` makes a cheap one from the model itself:
random unit encoder directions, a JumpReLU threshold per feature at the quantile that
makes it fire on `density` of a calibration text's tokens, and the decoder (with bias)
fitted by ridge regression to the MLP's real output. That takes seconds, gives sparse
features and a replacement model whose error nodes carry what the fit misses.
"""

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import InvalidInput, NotFound
from interpedia_db.models import Source, SourceSet
from interpedia_db.transcoder_sets import SET_TYPE
from interpedia_formats.transcoder_set import (
    CONFIG_NAME,
    FEATURE_INPUT_HOOK,
    FEATURE_OUTPUT_HOOK,
    layer_paths,
    read_set_config,
)

logger = logging.getLogger(__name__)

SET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def load_transcoder_set(folder: Path, *, device: str = "cpu") -> Any:
    """circuit-tracer's `TranscoderSet` from a folder in its layout (weights in memory)."""
    from circuit_tracer.transcoder import load_transcoder_set as load_set

    config = read_set_config(folder)
    if config is None:
        raise NotFound(f"no transcoder set at {folder} (no {CONFIG_NAME})")
    paths = {layer: str(path) for layer, path in layer_paths(folder, config).items()}
    if sorted(paths) != list(range(len(paths))):
        raise InvalidInput(
            f"the transcoder set at {folder} covers layers {sorted(paths)}; a replacement "
            "model needs one transcoder for every layer from 0 (train with --layers all)"
        )
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
    config = read_set_config(folder)
    return None if config is None else config.get("interpedia_fit")


# --- a quick set fitted in seconds ---------------------------------------------------------


def mlp_modules(hf_model: Any, n_layers: int) -> list[tuple[Any, Any]]:
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
    for layer, (norm, mlp) in enumerate(mlp_modules(hf_model, n_layers)):
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
    """FVU of one transcoder on (MLP input, MLP output) pairs (a sanity figure for a fit).

    `layer` holds circuit-tracer's tensors: a ReLU set has no threshold, a skip set a W_skip.
    """
    pre = x @ layer["W_enc"].T + layer["b_enc"]
    threshold = layer.get("activation_function.threshold", torch.zeros(()))
    acts = pre.relu() * (pre > threshold)
    prediction = acts @ layer["W_dec"] + layer["b_dec"]
    if "W_skip" in layer:
        prediction = prediction + x @ layer["W_skip"].T
    error = y - prediction
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
