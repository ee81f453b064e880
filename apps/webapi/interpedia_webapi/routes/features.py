"""A feature's dashboard, and its activation examples; many features at once (`features`,
`features-offset`)."""

from typing import Annotated, Any

from fastapi import APIRouter, Body

from interpedia_core.errors import InvalidInput, NotFound
from interpedia_core.service import error_responses
from interpedia_webapi import collaboration, dashboards
from interpedia_webapi.deps import SessionDep
from interpedia_webapi.feature_lists import FeatureRef
from interpedia_webapi.routes.comments import comment_info
from interpedia_webapi.schemas import (
    FEATURES_PER_OFFSET_PAGE,
    FeaturesBatchItem,
    FeaturesOffsetRequest,
    parse_index,
)

router = APIRouter(tags=["features"], responses=error_responses(InvalidInput, NotFound))


@router.get("/feature/{model_id}/{source_id}/{index}")
async def feature_get(
    model_id: str, source_id: str, index: str, session: SessionDep
) -> dict[str, Any]:
    """A feature's whole dashboard, with Neuronpedia's field names and its `comments`."""
    ref = FeatureRef(model_id, source_id, parse_index(index))
    dashboard = await dashboards.get_dashboard(session, ref.model_id, ref.source_id, ref.index)
    comments = await collaboration.feature_comments(session, ref)
    return dashboards.feature_json(dashboard) | {
        "comments": [comment_info(c).model_dump(mode="json") for c in comments]
    }


@router.get("/feature/{model_id}/{source_id}/{index}/activations")
async def feature_activations(
    model_id: str, source_id: str, index: str, session: SessionDep
) -> list[dict[str, Any]]:
    """The feature's stored activation examples, strongest first."""
    dashboard = await dashboards.get_dashboard(session, model_id, source_id, parse_index(index))
    return [dashboards.activation_json(a) for a in dashboard.activations]


@router.post("/features")
async def features_batch(
    body: Annotated[list[FeaturesBatchItem], Body(min_length=1, max_length=64)],
    session: SessionDep,
) -> list[dict[str, Any]]:
    """Several features' dashboards in the order asked; unknown ones are left out. The
    first item's `maxActsToReturn` caps the activations of each (as on Neuronpedia)."""
    keys = [(f.modelId, f.layer, parse_index(f.index)) for f in body]
    limit = body[0].maxActsToReturn
    found = await dashboards.get_dashboards(
        session, keys, dashboards.MAX_ACTIVATIONS if limit is None else limit
    )
    return [dashboards.feature_json(d) for d in found]


@router.post("/features-offset")
async def features_offset(body: FeaturesOffsetRequest, session: SessionDep) -> list[dict[str, Any]]:
    """A page of a source's features that fired, by index, from `offset`."""
    indices = await dashboards.fired_indices(
        session, body.modelId, body.layer, body.offset, FEATURES_PER_OFFSET_PAGE
    )
    found = await dashboards.get_dashboards(
        session,
        [(body.modelId, body.layer, i) for i in indices],
        dashboards.MAX_ACTIVATIONS,
    )
    return [dashboards.feature_json(d) for d in found]
