"""A feature's dashboard, and its activation examples."""

from typing import Any

from fastapi import APIRouter

from interpedia_core.errors import InvalidInput, NotFound
from interpedia_core.service import error_responses
from interpedia_webapi import dashboards
from interpedia_webapi.deps import SessionDep
from interpedia_webapi.schemas import parse_index

router = APIRouter(tags=["features"], responses=error_responses(InvalidInput, NotFound))


@router.get("/feature/{model_id}/{source_id}/{index}")
async def feature_get(
    model_id: str, source_id: str, index: str, session: SessionDep
) -> dict[str, Any]:
    """A feature's whole dashboard, with Neuronpedia's field names."""
    dashboard = await dashboards.get_dashboard(session, model_id, source_id, parse_index(index))
    return dashboards.feature_json(dashboard)


@router.get("/feature/{model_id}/{source_id}/{index}/activations")
async def feature_activations(
    model_id: str, source_id: str, index: str, session: SessionDep
) -> list[dict[str, Any]]:
    """The feature's stored activation examples, strongest first."""
    dashboard = await dashboards.get_dashboard(session, model_id, source_id, parse_index(index))
    return [dashboards.activation_json(a) for a in dashboard.activations]
