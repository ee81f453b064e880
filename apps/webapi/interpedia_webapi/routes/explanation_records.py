"""Explanations as records (Neuronpedia's `/api/explanation/*`): get, new, delete, vote,
unvote, export. Generating, scoring and search ask autointerp (`routes/explanations.py`)."""

from typing import Annotated, Any

from fastapi import APIRouter, Query

from interpedia_core.errors import Forbidden, InvalidInput, NotFound
from interpedia_core.service import error_responses
from interpedia_db.models import ExplanationVote
from interpedia_webapi import dashboards, explaining, visibility
from interpedia_webapi.deps import KEY_ERRORS, CurrentUser, OptionalUser, SessionDep
from interpedia_webapi.schemas import (
    ExplanationExportQuery,
    ExplanationNewRequest,
    parse_explanation_id,
    parse_index,
    visibility_of,
)

router = APIRouter(prefix="/explanation", tags=["explanations"])
# An id in the path that is not a number (400) or not an explanation (404).
BY_ID = error_responses(InvalidInput, NotFound)


def _vote_json(vote: ExplanationVote) -> dict[str, Any]:
    return {
        "id": str(vote.id),
        "voterId": str(vote.voter_id),
        "explanationId": str(vote.explanation_id),
        "points": vote.points,
    }


# Declared before /{explanation_id}: "export" is not an id.
@router.get("/export", responses=KEY_ERRORS | error_responses(InvalidInput, NotFound))
async def explanation_export(
    query: Annotated[ExplanationExportQuery, Query()], session: SessionDep, viewer: OptionalUser
) -> dict[str, Any]:
    """A source's explanations with their scores and votes, a page at a time (id order);
    others' private ones are left out."""
    await visibility.require_source(session, query.modelId, query.layer, viewer)
    rows = await explaining.export_explanations(
        session, query.modelId, query.layer, viewer, limit=query.limit, offset=query.offset
    )
    total = await explaining.count_explanations(session, query.modelId, query.layer, viewer)
    return {
        "explanations": [dashboards.explanation_json(e) for e in rows],
        "total": total,
        "nextOffset": query.offset + len(rows) if query.offset + len(rows) < total else None,
    }


@router.post("/new", responses=KEY_ERRORS | error_responses(InvalidInput, NotFound))
async def explanation_new(
    body: ExplanationNewRequest, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """A person's own explanation of a stored feature, authored by the caller."""
    feature = body.feature
    index = parse_index(feature.index)
    explanation = await explaining.new_explanation(
        session,
        feature.modelId,
        feature.layer,
        index,
        feature.explanation,
        explanation_model=feature.explanationModel,
        author=user,
        shown=visibility_of(feature.visibility),
    )
    await session.commit()
    explanation = await explaining.get_explanation(session, explanation.id, user)
    return {
        "message": "Explanation created",
        "url": f"/{feature.modelId}/{feature.layer}/{index}",
        "explanation": dashboards.explanation_json(explanation),
    }


@router.get("/{explanation_id}", responses=KEY_ERRORS | BY_ID)
async def explanation_get(
    explanation_id: str, session: SessionDep, viewer: OptionalUser
) -> dict[str, Any]:
    """One explanation with its scores and votes (404 for another's private one)."""
    explanation = await explaining.get_explanation(
        session, parse_explanation_id(explanation_id), viewer
    )
    return dashboards.explanation_json(explanation)


@router.post("/{explanation_id}/delete", responses=KEY_ERRORS | BY_ID | error_responses(Forbidden))
async def explanation_delete(
    explanation_id: str, session: SessionDep, user: CurrentUser
) -> dict[str, str]:
    """Delete an explanation (its scores, vectors and votes too): its author or an admin."""
    await explaining.delete_explanation(session, parse_explanation_id(explanation_id), user)
    await session.commit()
    return {"message": "Explanation deleted"}


@router.post("/{explanation_id}/vote", responses=KEY_ERRORS | BY_ID)
async def explanation_vote(
    explanation_id: str, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """Vote for an explanation; voting again is the same single vote."""
    vote = await explaining.vote(session, parse_explanation_id(explanation_id), user)
    await session.commit()
    return _vote_json(vote)


@router.post("/{explanation_id}/unvote", responses=KEY_ERRORS | BY_ID)
async def explanation_unvote(
    explanation_id: str, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """Take back the caller's vote; 404 when there is none."""
    vote = await explaining.unvote(session, parse_explanation_id(explanation_id), user)
    await session.commit()
    return _vote_json(vote)
