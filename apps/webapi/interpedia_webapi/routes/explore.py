"""Exploring a source: its feature map (Neuronpedia's `/api/umap`, a columnar form, and the
packed coordinates the source page's scatter draws first) and the evaluations of a source or
of all sources of a model."""

import json
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from interpedia_core.errors import NotFound
from interpedia_core.service import error_responses
from interpedia_webapi import evaluations, feature_map, visibility
from interpedia_webapi.deps import KEY_ERRORS, OptionalUser, SessionDep
from interpedia_webapi.schemas import (
    EvalsSourceRow,
    ModelEvalsResponse,
    SourceEvalsResponse,
    UmapExplanationsResponse,
    UmapPointsResponse,
    UmapRequest,
)

# 404 too for a source in a private set the caller may not read.
router = APIRouter(tags=["explore"], responses=KEY_ERRORS | error_responses(NotFound))


@router.post("/umap")
async def umap(
    body: UmapRequest, session: SessionDep, viewer: OptionalUser
) -> dict[str, list[dict[str, Any]]]:
    """Per source (`layers`), each mapped feature with its coordinates and explanation."""
    for source_id in body.layers:
        await visibility.require_source(session, body.modelId, source_id, viewer)
    return await feature_map.umap_explanations(session, body.modelId, body.layers)


@router.get(
    "/umap/{model_id}/{source_id}",
    response_class=Response,
    responses={200: {"model": UmapPointsResponse}},
)
async def umap_points(
    model_id: str, source_id: str, session: SessionDep, viewer: OptionalUser
) -> Response:
    """A source's whole feature map in one columnar answer (404 before it is computed)."""
    await visibility.require_source(session, model_id, source_id, viewer)
    points = await feature_map.map_points(session, model_id, source_id)
    body = {
        "modelId": model_id,
        "source": source_id,
        "count": len(points.index),
        "index": points.index,
        "x": points.x,
        "y": points.y,
        "cluster": points.cluster,
        "logDensity": points.log_density,
        "description": points.description,
    }
    # Serialised directly: validating 65k-entry arrays through the model would cost more
    # than the database query (the model above documents the shape).
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


@router.get(
    "/umap/{model_id}/{source_id}/coordinates",
    response_class=Response,
    responses={
        200: {
            "description": "For n features, n little-endian entries of each in turn: index "
            "(int32), x, y (float32), cluster (int32, -1: in none), log10 density (float32, "
            "NaN: never fired); 20 bytes per feature, index order.",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def umap_coordinates(
    model_id: str, source_id: str, session: SessionDep, viewer: OptionalUser
) -> Response:
    """A source's feature map without explanations, as packed arrays: what the source page
    draws first (a fifth of the columnar answer's size, and nothing to parse)."""
    await visibility.require_source(session, model_id, source_id, viewer)
    coordinates = await feature_map.map_coordinates(session, model_id, source_id)
    return Response(
        feature_map.pack_coordinates(coordinates), media_type="application/octet-stream"
    )


@router.get(
    "/umap/{model_id}/{source_id}/explanations",
    response_class=Response,
    responses={200: {"model": UmapExplanationsResponse}},
)
async def umap_explanations(
    model_id: str, source_id: str, session: SessionDep, viewer: OptionalUser
) -> Response:
    """A mapped source's public explanations without coordinates: what the source page's
    map shows on hover and searches, fetched once the coordinates are drawn."""
    await visibility.require_source(session, model_id, source_id, viewer)
    found = await feature_map.map_explanations(session, model_id, source_id)
    body = {
        "modelId": model_id,
        "source": source_id,
        "index": found.index,
        "description": found.description,
    }
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


@router.get("/evals/{model_id}/{source_id}")
async def source_evals(
    model_id: str, source_id: str, session: SessionDep, viewer: OptionalUser
) -> SourceEvalsResponse:
    """A source's stored evaluations, whole (SAE-Bench's output schema per type)."""
    await visibility.require_source(session, model_id, source_id, viewer)
    found = await evaluations.source_evals(session, model_id, source_id)
    return SourceEvalsResponse(modelId=model_id, source=source_id, evals=found.outputs)


@router.get("/evals/{model_id}")
async def model_evals(
    model_id: str, session: SessionDep, viewer: OptionalUser
) -> ModelEvalsResponse:
    """Every source of a model with its metrics side by side (the model page's table),
    without those in private sets the caller may not read."""
    rows = await evaluations.model_evals(session, model_id)
    hidden = await visibility.hidden_sources(
        session, {(model_id, r.source.id) for r in rows}, viewer
    )
    rows = [r for r in rows if (model_id, r.source.id) not in hidden]
    return ModelEvalsResponse(
        modelId=model_id,
        sources=[
            EvalsSourceRow(
                source=r.source.id,
                setName=r.source.set_name,
                layer=r.source.layer,
                hookName=r.source.hook_name,
                architecture=r.source.architecture,
                d_sae=r.source.d_sae,
                metrics=r.metrics,
            )
            for r in rows
        ],
    )
