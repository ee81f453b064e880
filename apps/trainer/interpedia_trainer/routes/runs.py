"""Training runs: the newest ones, one run's metric time series, runs side by side."""

from typing import Annotated

from fastapi import APIRouter, Query

from interpedia_core.errors import InvalidInput, NotFound
from interpedia_core.service import error_responses
from interpedia_core.wire import RowId
from interpedia_trainer import runs
from interpedia_trainer.deps import SessionDep
from interpedia_trainer.schemas import RunResponse, RunsCompareResponse, RunsResponse

router = APIRouter(tags=["runs"])


@router.get("/runs", response_model=RunsResponse)
async def list_runs(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500, description="How many runs, newest first.")] = 50,
) -> RunsResponse:
    """The newest training runs with their final metrics (what `interpedia runs` lists)."""
    summaries = await runs.run_summaries(session, limit=limit)
    return RunsResponse.model_validate({"runs": summaries}, from_attributes=True)


# Declared before /runs/{run_id}, which would otherwise claim the path and refuse "compare".
@router.get(
    "/runs/compare",
    response_model=RunsCompareResponse,
    responses=error_responses(InvalidInput, NotFound),
)
async def compare_runs(
    session: SessionDep,
    run_ids: Annotated[
        list[RowId],
        Query(min_length=2, max_length=20, description="Two or more run ids, in display order."),
    ],
) -> RunsCompareResponse:
    """Runs side by side: config differences and final metrics (`interpedia runs --compare`)."""
    summaries = await runs.run_summaries(session, run_ids=run_ids)
    return RunsCompareResponse.model_validate(runs.compare_runs(summaries))


@router.get("/runs/{run_id}", response_model=RunResponse, responses=error_responses(NotFound))
async def get_run(run_id: RowId, session: SessionDep) -> RunResponse:
    """One run (config, status, error, output, source, final metrics) and its time series."""
    return RunResponse.model_validate(await runs.run_detail(session, run_id))
