"""SAE architectures the trainer builds: SAELens training classes, chosen by name.

We train SAELens's own `TrainingSAE` subclasses so the output folder is exactly what
`sae_lens.SAE.load_from_disk` expects. This module maps our flat options
(`ArchitectureOptions`) to the right SAELens config dataclass, with one explicit registry
so a typo fails before any work starts, and builds the inference SAE a training SAE
turns into when saved (`inference_sae`): BatchTopK and Matryoshka BatchTopK become
JumpReLU SAEs with the learned threshold, as in SAELens.
"""

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sae_lens import (
    SAE,
    BatchTopKTrainingSAE,
    BatchTopKTrainingSAEConfig,
    JumpReLUTrainingSAE,
    JumpReLUTrainingSAEConfig,
    MatryoshkaBatchTopKTrainingSAE,
    MatryoshkaBatchTopKTrainingSAEConfig,
    StandardTrainingSAE,
    StandardTrainingSAEConfig,
    TopKTrainingSAE,
    TopKTrainingSAEConfig,
)
from sae_lens.saes.sae import SAEMetadata, TrainingSAE

from interpedia_core.errors import InvalidInput


@dataclass(frozen=True)
class ArchitectureOptions:
    """The options any architecture may read; each reads only its own."""

    k: float | None = 32
    l1_coefficient: float = 5.0
    l0_coefficient: float = 1.0
    aux_loss_coefficient: float = 1.0  # TopK family: weight of the AuxK dead-latent loss
    matryoshka_widths: tuple[int, ...] | None = None  # None: `default_matryoshka_widths`


@dataclass(frozen=True)
class ArchitectureSpec:
    """How to build one SAELens training SAE from our options."""

    name: str
    build_cfg: Callable[[dict[str, Any], ArchitectureOptions], Any]
    sae_class: type[TrainingSAE[Any]]
    topk_family: bool  # k latents per token (or per batch): the sparse step applies


def default_matryoshka_widths(d_sae: int) -> tuple[int, ...]:
    """Nested prefixes doubling up to the whole dictionary: d_sae/16, /8, /4, /2, d_sae.

    Small first levels learn the most general features (Bussmann et al. 2025 use a few
    levels growing geometrically); prefixes narrower than 16 latents are dropped.
    """
    widths = [d_sae >> shift for shift in (4, 3, 2, 1) if d_sae >> shift >= 16]
    return (*widths, d_sae)


def _standard(common: dict[str, Any], o: ArchitectureOptions) -> Any:
    return StandardTrainingSAEConfig(**common, l1_coefficient=o.l1_coefficient)


def _topk(common: dict[str, Any], o: ArchitectureOptions) -> Any:
    return TopKTrainingSAEConfig(
        **common, k=int(o.k or 32), aux_loss_coefficient=o.aux_loss_coefficient
    )


def _batchtopk(common: dict[str, Any], o: ArchitectureOptions) -> Any:
    return BatchTopKTrainingSAEConfig(
        **common, k=float(o.k or 32), aux_loss_coefficient=o.aux_loss_coefficient
    )


def _matryoshka(common: dict[str, Any], o: ArchitectureOptions) -> Any:
    widths = o.matryoshka_widths or default_matryoshka_widths(common["d_sae"])
    return MatryoshkaBatchTopKTrainingSAEConfig(
        **common,
        k=float(o.k or 32),
        aux_loss_coefficient=o.aux_loss_coefficient,
        matryoshka_widths=list(widths),
    )


def _jumprelu(common: dict[str, Any], o: ArchitectureOptions) -> Any:
    return JumpReLUTrainingSAEConfig(**common, l0_coefficient=o.l0_coefficient)


ARCHITECTURES: dict[str, ArchitectureSpec] = {}


def register(spec: ArchitectureSpec) -> None:
    """Add an architecture; a duplicate name is a programming error."""
    if spec.name in ARCHITECTURES:
        raise ValueError(f"architecture {spec.name!r} is already registered")
    ARCHITECTURES[spec.name] = spec


register(ArchitectureSpec("standard", _standard, StandardTrainingSAE, topk_family=False))
register(ArchitectureSpec("topk", _topk, TopKTrainingSAE, topk_family=True))
register(ArchitectureSpec("batchtopk", _batchtopk, BatchTopKTrainingSAE, topk_family=True))
register(
    ArchitectureSpec(
        "matryoshka_batchtopk", _matryoshka, MatryoshkaBatchTopKTrainingSAE, topk_family=True
    )
)
register(ArchitectureSpec("jumprelu", _jumprelu, JumpReLUTrainingSAE, topk_family=False))


def validate_architecture(
    architecture: str, d_in: int, d_sae: int, options: ArchitectureOptions
) -> ArchitectureSpec:
    """Check the shape options and return the spec; raises `InvalidInput` with a fix."""
    spec = ARCHITECTURES.get(architecture)
    if spec is None:
        raise InvalidInput(
            f"unknown architecture {architecture!r}; choose one of {sorted(ARCHITECTURES)}"
        )
    if d_in <= 0:
        raise InvalidInput(f"d_in must be positive, got {d_in}")
    if d_sae <= 0:
        raise InvalidInput(f"d_sae must be positive, got {d_sae}")
    k = options.k
    if spec.topk_family:
        if k is None or k <= 0:
            raise InvalidInput(f"{architecture} needs k > 0, got {k}")
        if k > d_sae:
            raise InvalidInput(f"k ({k}) cannot exceed d_sae ({d_sae})")
        if options.aux_loss_coefficient < 0:
            raise InvalidInput(
                f"aux_loss_coefficient must be >= 0 (0 turns AuxK off), "
                f"got {options.aux_loss_coefficient}"
            )
    widths = options.matryoshka_widths
    if widths is not None:
        if architecture != "matryoshka_batchtopk":
            raise InvalidInput("matryoshka_widths is for architecture matryoshka_batchtopk")
        if (
            not widths
            or widths[0] <= 0
            or any(a >= b for a, b in itertools.pairwise(widths))
            or widths[-1] != d_sae
        ):
            raise InvalidInput(
                f"matryoshka_widths must increase strictly and end at d_sae ({d_sae}), "
                f"got {list(widths)}"
            )
    return spec


def build_training_sae(
    architecture: str,
    d_in: int,
    d_sae: int,
    *,
    options: ArchitectureOptions | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    normalize_activations: str = "none",
    metadata: dict[str, Any] | None = None,
    transcoder: bool = False,
) -> TrainingSAE[Any]:
    """Build a freshly initialised SAELens training SAE (seed torch before calling).

    `transcoder`: the decoder predicts another activation (`transcoders`), so its bias is
    in the output's space and is not subtracted from the input.
    """
    options = options or ArchitectureOptions()
    spec = validate_architecture(architecture, d_in, d_sae, options)
    common: dict[str, Any] = {
        "d_in": d_in,
        "d_sae": d_sae,
        "device": device,
        "dtype": dtype,
        "normalize_activations": normalize_activations,
        "metadata": SAEMetadata(**(metadata or {})),
    }
    if transcoder:
        common["apply_b_dec_to_input"] = False
    return spec.sae_class(spec.build_cfg(common, options))


def inference_sae(sae: TrainingSAE[Any], scaling_factor: float | None = None) -> SAE[Any]:
    """The SAELens inference SAE `sae` is saved as, with the input scale folded in.

    What `save_inference_model` writes and `SAE.load_from_disk` reads back, built in
    memory: decoder norms folded (TopK family), the BatchTopK threshold turned into a
    JumpReLU threshold, and `scaling_factor` (inputs were multiplied by it in training)
    folded into the weights, so the result takes raw activations. The training SAE is
    left untouched, so evaluation mid-run sees exactly what a user would load.
    """
    folded = copy.deepcopy(sae)
    if scaling_factor is not None:
        folded.fold_activation_norm_scaling_factor(scaling_factor)
    state = {name: t.detach().clone() for name, t in folded.state_dict().items()}
    folded.process_state_dict_for_saving_inference(state)
    inference = SAE.from_dict(folded.cfg.get_inference_sae_cfg_dict())
    inference.load_state_dict(state)
    return inference.to(sae.W_dec.device).eval()
