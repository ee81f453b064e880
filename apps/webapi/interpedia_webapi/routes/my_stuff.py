"""What a person made, for their "my stuff" page: saved steering runs and explanations
(their lists, vectors and bookmarks have Neuronpedia's own routes: `list/list`,
`vector/list-owned`, `user/bookmarks`)."""

from typing import Any

from fastapi import APIRouter

from interpedia_webapi import dashboards, explaining, steering
from interpedia_webapi.deps import KEY_ERRORS, CurrentUser, SessionDep
from interpedia_webapi.routes.steer_runs import load_response
from interpedia_webapi.schemas import SteerLoadResponse

router = APIRouter(prefix="/user", tags=["my stuff"], responses=KEY_ERRORS)
MY_ROWS = 200  # the page shows the newest; older ones stay reachable by their links


@router.post("/steers")
async def user_steers(session: SessionDep, user: CurrentUser) -> list[SteerLoadResponse]:
    """The steering runs the caller made (first ran), newest first."""
    return [load_response(r) for r in await steering.runs_of(session, user, limit=MY_ROWS)]


@router.post("/explanations")
async def user_explanations(session: SessionDep, user: CurrentUser) -> list[dict[str, Any]]:
    """The explanations the caller wrote or generated, newest first."""
    rows = await explaining.explanations_by(session, user, MY_ROWS)
    return [dashboards.explanation_json(e) for e in rows]
