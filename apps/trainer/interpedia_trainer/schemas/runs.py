"""Training runs as the API shows them: summaries, one run's time series, comparisons.

The fields mirror `runs.RunSummary` / `runs.RunDetail` / `runs.RunComparison` (what
`interpedia runs --json` prints), so the CLI and the API describe a run the same way.
"""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RunSummaryResponse(BaseModel):
    """A training run: identity, status, tokens trained so far and final held-out metrics."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="Run id, as `GET /v1/runs/{run_id}` takes it.")
    name: str = Field(description="`{layer}-{source_set}`: the source id it registers.")
    model_id: str
    hook_name: str
    architecture: str
    status: str = Field(
        description="queued, running, succeeded, failed, or stopped (on request, with a "
        "checkpoint: rerunning its command or retrying its job resumes it)."
    )
    n_tokens: int = Field(description="Tokens trained at the last recorded step (0 before it).")
    source_id: str | None = Field(description="The source the SAE became, once it succeeded.")
    error: str | None = Field(
        description="Why the run failed or stopped (None while queued, running or succeeded)."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    output_path: str | None = Field(description="The trained SAE folder, once saved.")
    job_id: int | None = Field(description="The queue job training it; None for CLI runs.")
    config: dict[str, Any] = Field(description="The training config the run was started with.")
    final_metrics: dict[str, Any] = Field(
        description="Last metrics of the run; `eval/*` are held-out (explained_variance, l0, "
        "mse, ce_loss_recovered)."
    )


class RunsResponse(BaseModel):
    """The newest training runs, newest first."""

    runs: list[RunSummaryResponse]


class RunMetricPoint(BaseModel):
    """Metrics a run recorded at one training step."""

    model_config = ConfigDict(from_attributes=True)

    step: int = Field(description="Optimizer step.")
    n_tokens: int = Field(description="Tokens trained by this step.")
    values: dict[str, float] = Field(description="Metric name → value (loss, l0, eval/mse...).")


class RunResponse(BaseModel):
    """One training run and its metric time series."""

    model_config = ConfigDict(from_attributes=True)

    run: RunSummaryResponse = Field(description="The run, as `GET /v1/runs` lists it.")
    metrics: list[RunMetricPoint] = Field(description="Every recorded step, oldest first.")


class RunsCompareResponse(BaseModel):
    """Runs side by side: the config keys whose values differ, and every final metric."""

    model_config = ConfigDict(from_attributes=True)

    runs: list[RunSummaryResponse] = Field(description="The runs, in the order asked for.")
    config_differences: dict[str, list[Any]] = Field(
        description="Config key → its value in each run, only for keys that differ."
    )
    final_metrics: dict[str, list[float | None]] = Field(
        description="Final metric → its value in each run (None where a run lacks it)."
    )
