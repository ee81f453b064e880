"""Admin exports (Neuronpedia's `/api/admin/export-features`, `export-explanations`): a
source's rows as one JSON array, streamed as they are read (`admin_export`)."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from interpedia_core.errors import InvalidInput, NotFound
from interpedia_core.service import error_responses
from interpedia_core.sse import json_array_stream
from interpedia_webapi import admin_export, catalog
from interpedia_webapi.deps import ADMIN_ERRORS, AdminUser, SessionDep
from interpedia_webapi.schemas import (
    AdminExportExplanationsRequest,
    AdminExportFeaturesRequest,
)

router = APIRouter(
    prefix="/admin",
    tags=["admin export"],
    responses=ADMIN_ERRORS | error_responses(NotFound),
)


def _array_of(what: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": f"The {what}, one JSON array streamed as it is read",
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}}
            },
        }
    }


@router.post(
    "/export-features",
    response_model=None,
    responses=_array_of("features' dashboards") | error_responses(InvalidInput),
)
async def export_features(
    body: AdminExportFeaturesRequest, session: SessionDep, _: AdminUser, request: Request
) -> StreamingResponse:
    """The source's features from `beginIndex` to `endIndex`, with activations and
    explanations (Neuronpedia's `Neuron` fields)."""
    if body.endIndex < body.beginIndex:
        raise InvalidInput("endIndex must be at least beginIndex")
    await catalog.get_source(session, body.modelId, body.sourceId)
    return json_array_stream(
        admin_export.feature_rows(
            request.app.state.sessionmaker,
            body.modelId,
            body.sourceId,
            body.beginIndex,
            body.endIndex,
        )
    )


@router.post("/export-explanations", response_model=None, responses=_array_of("explanations"))
async def export_explanations(
    body: AdminExportExplanationsRequest, session: SessionDep, _: AdminUser, request: Request
) -> StreamingResponse:
    """The source's explanations with scores and votes, `maxResults` at most."""
    await catalog.get_source(session, body.modelId, body.sourceId)
    return json_array_stream(
        admin_export.explanation_rows(
            request.app.state.sessionmaker, body.modelId, body.sourceId, body.maxResults
        )
    )
