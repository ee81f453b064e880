"""SAE architectures the trainer builds: SAELens training classes, chosen by name.

We train SAELens's own `TrainingSAE` subclasses so the output folder is exactly what
`sae_lens.SAE.load_from_disk` expects. This module only maps our flat config
(`architecture`, `d_sae`, `k`, `l1_coefficient`, `l0_coefficient`) to the right SAELens
config dataclass, with one explicit registry so a typo fails before any work starts.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sae_lens import (
    BatchTopKTrainingSAE,
    BatchTopKTrainingSAEConfig,
    JumpReLUTrainingSAE,
    JumpReLUTrainingSAEConfig,
    StandardTrainingSAE,
    StandardTrainingSAEConfig,
    TopKTrainingSAE,
    TopKTrainingSAEConfig,
)
from sae_lens.saes.sae import SAEMetadata, TrainingSAE

from interpedia_core.errors import InvalidInput


@dataclass(frozen=True)
class ArchitectureSpec:
    """How to build one SAELens training SAE from our flat options."""

    name: str
    build_cfg: Callable[..., Any]
    sae_class: type[TrainingSAE[Any]]
    sparse: bool  # True: the trainer's sparse (gathered-decoder) step applies


def _standard(common: dict[str, Any], k: float | None, l1: float, l0: float) -> Any:
    return StandardTrainingSAEConfig(**common, l1_coefficient=l1)


def _topk(common: dict[str, Any], k: float | None, l1: float, l0: float) -> Any:
    return TopKTrainingSAEConfig(**common, k=int(k or 32))


def _batchtopk(common: dict[str, Any], k: float | None, l1: float, l0: float) -> Any:
    return BatchTopKTrainingSAEConfig(**common, k=float(k or 32))


def _jumprelu(common: dict[str, Any], k: float | None, l1: float, l0: float) -> Any:
    return JumpReLUTrainingSAEConfig(**common, l0_coefficient=l0)


ARCHITECTURES: dict[str, ArchitectureSpec] = {}


def register(spec: ArchitectureSpec) -> None:
    """Add an architecture; a duplicate name is a programming error."""
    if spec.name in ARCHITECTURES:
        raise ValueError(f"architecture {spec.name!r} is already registered")
    ARCHITECTURES[spec.name] = spec


register(ArchitectureSpec("standard", _standard, StandardTrainingSAE, sparse=False))
register(ArchitectureSpec("topk", _topk, TopKTrainingSAE, sparse=True))
register(ArchitectureSpec("batchtopk", _batchtopk, BatchTopKTrainingSAE, sparse=True))
register(ArchitectureSpec("jumprelu", _jumprelu, JumpReLUTrainingSAE, sparse=False))


def validate_architecture(
    architecture: str, d_in: int, d_sae: int, k: float | None
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
    if spec.sparse:
        if k is None or k <= 0:
            raise InvalidInput(f"{architecture} needs k > 0, got {k}")
        if k > d_sae:
            raise InvalidInput(f"k ({k}) cannot exceed d_sae ({d_sae})")
    return spec


def build_training_sae(
    architecture: str,
    d_in: int,
    d_sae: int,
    *,
    k: float | None = None,
    l1_coefficient: float = 5.0,
    l0_coefficient: float = 1.0,
    device: str = "cpu",
    dtype: str = "float32",
    normalize_activations: str = "none",
    metadata: dict[str, Any] | None = None,
) -> TrainingSAE[Any]:
    """Build a freshly initialised SAELens training SAE (seed torch before calling)."""
    spec = validate_architecture(architecture, d_in, d_sae, k)
    common: dict[str, Any] = {
        "d_in": d_in,
        "d_sae": d_sae,
        "device": device,
        "dtype": dtype,
        "normalize_activations": normalize_activations,
        "metadata": SAEMetadata(**(metadata or {})),
    }
    cfg = spec.build_cfg(common, k, l1_coefficient, l0_coefficient)
    return spec.sae_class(cfg)
