"""Requests that start long work, and the job status they answer with."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from interpedia_core.wire import INT64_MAX, BigRowId, Seed

Architecture = Literal["standard", "topk", "batchtopk", "matryoshka_batchtopk", "jumprelu"]
TOPK_FAMILY = ("topk", "batchtopk", "matryoshka_batchtopk")


class TrainRequest(BaseModel):
    """Train one SAE on a model's activations at one hook."""

    model_id: str = Field("smollm2-135m", max_length=128)
    hook_name: str = Field("blocks.6.hook_resid_post", max_length=256)
    architecture: Architecture = "topk"
    d_sae: int | None = Field(None, gt=0, le=1 << 20)
    expansion_factor: int | None = Field(None, gt=0, le=256)
    k: int = Field(32, gt=0, le=1 << 20, description="Active latents per token (TopK family).")
    aux_loss_coefficient: float = Field(
        1.0, ge=0, description="AuxK dead-latent revival weight (TopK family); 0 turns it off."
    )
    dead_feature_window: int = Field(
        1000, gt=0, description="Steps without firing before a latent counts as dead (AuxK)."
    )
    matryoshka_widths: list[int] | None = Field(
        None,
        max_length=64,
        description="matryoshka_batchtopk: increasing prefix widths ending at d_sae "
        "(default: doubling from d_sae/16).",
    )
    l1_coefficient: float = Field(5.0, ge=0, description="Sparsity penalty (standard).")
    l0_coefficient: float = Field(1.0, ge=0, description="Sparsity penalty (jumprelu).")
    lr: float = Field(4e-4, gt=0, le=1)
    batch_size: int = Field(4096, gt=0, le=1 << 16)
    total_tokens: int = Field(2_000_000, gt=0, le=INT64_MAX)
    context_size: int = Field(128, gt=1, le=8192)
    corpus: str | None = Field(
        None, max_length=1024, description="Folder of .txt, .jsonl, or dataset name."
    )
    seed: Seed = 42
    source_set: str = Field(
        "res-demo",
        pattern=r"^[a-z0-9][a-z0-9-]{0,63}$",
        description="The SAE becomes source `{layer}-{source_set}` of the model; a source id "
        "that exists or another run is training is refused (409).",
    )

    @model_validator(mode="after")
    def _sizes_agree(self) -> "TrainRequest":
        if self.d_sae is not None and self.architecture in TOPK_FAMILY and self.k > self.d_sae:
            raise ValueError(f"k ({self.k}) cannot exceed d_sae ({self.d_sae})")
        return self


class DashboardsRequest(BaseModel):
    """Compute dashboards for a source's features, split into jobs over index ranges."""

    model_id: str = Field("smollm2-135m", max_length=128)
    source_id: str = Field(..., max_length=128)
    n_prompts: int = Field(2048, gt=0, le=1_000_000)
    context_size: int = Field(128, gt=1, le=8192)
    features_per_job: int = Field(4096, gt=0, le=1 << 20)
    corpus: str | None = Field(None, max_length=1024)


class JobsEnqueuedResponse(BaseModel):
    """The jobs a request enqueued; poll each with `GET /v1/jobs/{id}`."""

    job_ids: list[BigRowId] = Field(description="Queue job ids, in the order the work is split.")


class JobResponse(BaseModel):
    """A queued job: its state on the queue and what it last reported."""

    id: int
    task: str = Field(description="Task name, e.g. `trainer:train_sae`.")
    status: Literal["todo", "doing", "succeeded", "failed", "cancelled", "aborting", "aborted"]
    attempts: int = Field(description="Runs started so far (retries included).")
    args: dict[str, Any] = Field(description="The arguments the job was enqueued with.")
    done: int | None = Field(None, description="Units of work done (tokens, prompts, concepts).")
    total: int | None = Field(None, description="Units of work in all, when known.")
    message: str = Field(
        "", description="What the job is doing (a refused concept job: `failed: <why>`)."
    )
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="Task-specific JSON: the latest metrics while training; for "
        '`trainer:concept_scores`, the result as `{"concepts": [{concept, n_examples, '
        "features: [{feature, score, mean_concept, mean_base, frac_concept, frac_base}]}]}`.",
    )
    updated_at: datetime | None = Field(None, description="When the progress last changed.")
