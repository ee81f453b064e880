"""Bookmarks (Neuronpedia's `/api/bookmark/*`, `/api/user/bookmarks`): a person's own
features to come back to; each call reaches only the caller's bookmarks."""

from fastapi import APIRouter

from interpedia_core.errors import InvalidInput, NotFound
from interpedia_core.service import error_responses
from interpedia_db.models import Bookmark
from interpedia_webapi import collaboration
from interpedia_webapi.deps import KEY_ERRORS, CurrentUser, SessionDep
from interpedia_webapi.feature_lists import FeatureRef
from interpedia_webapi.schemas import BookmarkInfo, FeatureKey

router = APIRouter(tags=["bookmarks"])
# A key (401), a well-formed index (400), the feature or the bookmark must exist (404).
BOOKMARK = KEY_ERRORS | error_responses(InvalidInput, NotFound)


def _info(bookmark: Bookmark) -> BookmarkInfo:
    return BookmarkInfo(
        id=str(bookmark.id),
        modelId=bookmark.model_id,
        layer=bookmark.source_id,
        index=str(bookmark.index),
        createdAt=bookmark.created_at.isoformat(),
    )


@router.post("/bookmark/add", responses=BOOKMARK)
async def bookmark_add(body: FeatureKey, session: SessionDep, user: CurrentUser) -> BookmarkInfo:
    """Bookmark a feature; bookmarking it again answers the same bookmark."""
    bookmark = await collaboration.add_bookmark(session, user, FeatureRef.of(body))
    await session.commit()
    return _info(bookmark)


@router.post("/bookmark/delete", responses=BOOKMARK)
async def bookmark_delete(
    body: FeatureKey, session: SessionDep, user: CurrentUser
) -> dict[str, str]:
    """Remove the caller's bookmark of a feature (other people's stay)."""
    await collaboration.delete_bookmark(session, user, FeatureRef.of(body))
    await session.commit()
    return {"message": "ok"}


@router.post("/user/bookmarks", responses=KEY_ERRORS)
async def user_bookmarks(session: SessionDep, user: CurrentUser) -> list[BookmarkInfo]:
    """The caller's bookmarks, newest first."""
    return [_info(b) for b in await collaboration.bookmarks_of(session, user)]
