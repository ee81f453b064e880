"""Wire models of the trainer service: the source of truth for schemas/trainer.json.

Names follow the path: `TrainRequest` for POST /v1/train, `RunsResponse` for
GET /v1/runs, `JobResponse` for the job endpoints.
"""

from interpedia_trainer.schemas.concepts import (
    BuiltinConceptSet,
    ConceptSet,
    ConceptsRequest,
    ConceptsResponse,
)
from interpedia_trainer.schemas.explore import EvalKind, EvaluationsRequest, UmapRequest
from interpedia_trainer.schemas.jobs import (
    DashboardsRequest,
    JobResponse,
    JobsEnqueuedResponse,
    TrainRequest,
)
from interpedia_trainer.schemas.runs import (
    RunMetricPoint,
    RunResponse,
    RunsCompareResponse,
    RunsResponse,
    RunSummaryResponse,
)

__all__ = [
    "BuiltinConceptSet",
    "ConceptSet",
    "ConceptsRequest",
    "ConceptsResponse",
    "DashboardsRequest",
    "EvalKind",
    "EvaluationsRequest",
    "JobResponse",
    "JobsEnqueuedResponse",
    "RunMetricPoint",
    "RunResponse",
    "RunSummaryResponse",
    "RunsCompareResponse",
    "RunsResponse",
    "TrainRequest",
    "UmapRequest",
]
