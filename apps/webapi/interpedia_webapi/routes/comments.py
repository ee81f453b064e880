"""Comments on features and lists (Neuronpedia's `/api/comment/*`, `/api/list/comment/*`):
anyone reads them with the feature or list; a key writes; the author or an admin deletes."""

from fastapi import APIRouter

from interpedia_core.errors import Forbidden, InvalidInput, NotFound
from interpedia_core.service import error_responses
from interpedia_db.models import Comment, ListComment
from interpedia_webapi import collaboration, feature_lists
from interpedia_webapi.deps import KEY_ERRORS, CurrentUser, SessionDep
from interpedia_webapi.feature_lists import FeatureRef
from interpedia_webapi.schemas import (
    CommentAuthor,
    CommentDeleteRequest,
    CommentInfo,
    CommentNewRequest,
    ListCommentDeleteRequest,
    ListCommentInfo,
    ListCommentNewRequest,
    parse_comment_id,
)

router = APIRouter(tags=["comments"])
# Writing: a key (401), text within bounds (400), the feature or list must exist (404).
WRITE = KEY_ERRORS | error_responses(InvalidInput, NotFound)
# Deleting: a key (401), the comment must exist (404) and be the caller's (403).
DELETE = KEY_ERRORS | error_responses(InvalidInput, NotFound, Forbidden)


def comment_info(comment: Comment) -> CommentInfo:
    return CommentInfo(
        id=str(comment.id),
        modelId=comment.model_id,
        layer=comment.source_id,
        index=str(comment.index),
        text=comment.text,
        user=CommentAuthor(name=comment.user.name),
        createdAt=comment.created_at.isoformat(),
    )


def list_comment_info(comment: ListComment) -> ListCommentInfo:
    return ListCommentInfo(
        id=str(comment.id),
        listId=comment.list_id,
        text=comment.text,
        user=CommentAuthor(name=comment.user.name),
        createdAt=comment.created_at.isoformat(),
    )


@router.post("/comment/new", responses=WRITE)
async def comment_new(
    body: CommentNewRequest, session: SessionDep, user: CurrentUser
) -> CommentInfo:
    """Comment on a feature (5 to 1,024 characters)."""
    ref = FeatureRef.of(body)
    comment = await collaboration.add_comment(session, user, ref, body.text)
    await session.commit()
    return comment_info(comment)


@router.post("/comment/delete", responses=DELETE)
async def comment_delete(
    body: CommentDeleteRequest, session: SessionDep, user: CurrentUser
) -> dict[str, str]:
    """Delete one of the caller's comments (an admin may delete any)."""
    await collaboration.delete_comment(session, user, parse_comment_id(body.id))
    await session.commit()
    return {"message": "ok"}


@router.post("/list/comment/new", responses=WRITE)
async def list_comment_new(
    body: ListCommentNewRequest, session: SessionDep, user: CurrentUser
) -> ListCommentInfo:
    """Comment on a list; anyone with a key who can open the list may."""
    feature_list = await feature_lists.get_list(session, body.listId, user)
    comment = await collaboration.add_list_comment(session, user, feature_list, body.text)
    await session.commit()
    return list_comment_info(comment)


@router.post("/list/comment/delete", responses=DELETE)
async def list_comment_delete(
    body: ListCommentDeleteRequest, session: SessionDep, user: CurrentUser
) -> dict[str, str]:
    """Delete one of the caller's list comments (an admin may delete any)."""
    await collaboration.delete_list_comment(session, user, parse_comment_id(body.commentId))
    await session.commit()
    return {"message": "ok"}
