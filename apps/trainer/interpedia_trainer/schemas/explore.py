"""Requests that queue a source's feature map and its evaluations."""

from typing import Literal

from pydantic import BaseModel, Field

EvalKind = Literal["core", "absorption_first_letter"]


class UmapRequest(BaseModel):
    """Compute a source's feature map (2-D UMAP of its decoder directions) as a job.

    Refused (400) when the source has no dashboards (the map is stored on its features'
    rows) or has neither weights nor stored decoder vectors.
    """

    model_id: str = Field("smollm2-135m", max_length=128)
    source_id: str = Field(..., max_length=128)


class EvaluationsRequest(BaseModel):
    """Evaluate a source's SAE on the fixed evaluation set as a job (400 without weights)."""

    model_id: str = Field("smollm2-135m", max_length=128)
    source_id: str = Field(..., max_length=128)
    kinds: list[EvalKind] = Field(
        default_factory=lambda: ["core", "absorption_first_letter"],
        min_length=1,
        max_length=2,
        description="`core` (reconstruction, sparsity, CE loss recovered, density) and/or "
        "`absorption_first_letter` (SAE-Bench's feature absorption).",
    )
    corpus: str | None = Field(
        None, description="Corpus whose last contexts are the evaluation set (default: ours)."
    )
