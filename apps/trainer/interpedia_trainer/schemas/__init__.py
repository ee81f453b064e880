"""Wire models of the trainer service: the source of truth for schemas/trainer.json.

Names follow the path: `TrainRequest` for POST /v1/train, `JobResponse` for the
job endpoints.
"""

from interpedia_trainer.schemas.jobs import (
    DashboardsRequest,
    JobResponse,
    JobsEnqueuedResponse,
    TrainRequest,
)

__all__ = [
    "DashboardsRequest",
    "JobResponse",
    "JobsEnqueuedResponse",
    "TrainRequest",
]
