"""Lists of features (Neuronpedia's `/api/list/*`); reading a public or unlisted list needs
only its id, a private one is its owner's (and admins')."""

from fastapi import APIRouter

from interpedia_core.errors import Forbidden, InvalidInput, NotFound
from interpedia_core.service import error_responses
from interpedia_db.models import FeatureList, FeatureListItem
from interpedia_webapi import collaboration, feature_lists
from interpedia_webapi.deps import KEY_ERRORS, CurrentUser, OptionalUser, SessionDep
from interpedia_webapi.feature_lists import FeatureRef
from interpedia_webapi.routes.comments import list_comment_info
from interpedia_webapi.schemas import (
    ListAddFeaturesRequest,
    ListEditFeatureRequest,
    ListFeatureToAdd,
    ListGetResponse,
    ListIdRequest,
    ListInfo,
    ListItemInfo,
    ListNewRequest,
    ListNewWithFeaturesRequest,
    ListRemoveRequest,
    ListUpdateRequest,
    visibility_of,
)

router = APIRouter(prefix="/list", tags=["lists"])
# Changing a list: a key (401), the list must exist (404) and be the caller's (403).
OWNED = KEY_ERRORS | error_responses(NotFound, Forbidden)


def _info(feature_list: FeatureList) -> ListInfo:
    return ListInfo(
        id=feature_list.id,
        name=feature_list.name,
        description=feature_list.description,
        url=f"/lists/{feature_list.id}",
        defaultTestText=feature_list.default_test_text,
        visibility=feature_list.visibility.upper(),
    )


def _refs(features: list[ListFeatureToAdd]) -> list[FeatureRef]:
    return [FeatureRef.of(f, f.description) for f in features]


def _item(item: FeatureListItem) -> ListItemInfo:
    return ListItemInfo(
        modelId=item.model_id,
        layer=item.source_id,
        index=str(item.index),
        description=item.description,
    )


@router.post("/new", responses=KEY_ERRORS)
async def list_new(body: ListNewRequest, session: SessionDep, user: CurrentUser) -> ListInfo:
    """A new, empty list owned by the caller."""
    feature_list = await feature_lists.create_list(
        session, user, body.name, body.description, shown=visibility_of(body.visibility)
    )
    await session.commit()
    return _info(feature_list)


@router.post("/add-features", responses=OWNED | error_responses(InvalidInput))
async def list_add_features(
    body: ListAddFeaturesRequest, session: SessionDep, user: CurrentUser
) -> list[ListItemInfo]:
    """Add features (each must exist) to one of the caller's lists."""
    feature_list = await feature_lists.owned_list(session, body.listId, user)
    items = await feature_lists.add_features(session, feature_list, _refs(body.featuresToAdd))
    await session.commit()
    return [_item(i) for i in items]


@router.post("/get", responses=KEY_ERRORS | error_responses(NotFound))
async def list_get(
    body: ListIdRequest, session: SessionDep, viewer: OptionalUser
) -> ListGetResponse:
    """A list and its features; anyone with a public or unlisted list's id may read it,
    another's private list is 404."""
    feature_list = await feature_lists.get_list(session, body.listId, viewer)
    items = await feature_lists.list_items(session, feature_list.id)
    comments = await collaboration.list_comments(session, feature_list.id)
    return ListGetResponse(
        **_info(feature_list).model_dump(),
        neurons=[_item(i) for i in items],
        comments=[list_comment_info(c) for c in comments],
    )


@router.post("/new-with-features", responses=KEY_ERRORS | error_responses(InvalidInput, NotFound))
async def list_new_with_features(
    body: ListNewWithFeaturesRequest, session: SessionDep, user: CurrentUser
) -> ListInfo:
    """A new list holding `features` at once. Unlike Neuronpedia, which skips features it
    cannot find, an unknown feature refuses the whole call (404 naming it): no list is
    left half-made."""
    feature_list = await feature_lists.create_list(
        session, user, body.name, body.description, body.testText
    )
    await feature_lists.add_features(session, feature_list, _refs(body.features))
    await session.commit()
    return _info(feature_list)


@router.post("/update", responses=OWNED | error_responses(InvalidInput))
async def list_update(body: ListUpdateRequest, session: SessionDep, user: CurrentUser) -> ListInfo:
    """Change one of the caller's lists: name, description, test text or visibility."""
    feature_list = await feature_lists.owned_list(session, body.listId, user)
    shown = visibility_of(body.visibility) if body.visibility else None
    feature_lists.update_list(
        feature_list, body.name, body.description, body.defaultTestText, shown
    )
    await session.commit()
    return _info(feature_list)


@router.post("/edit-feature", responses=OWNED | error_responses(InvalidInput))
async def list_edit_feature(
    body: ListEditFeatureRequest, session: SessionDep, user: CurrentUser
) -> ListItemInfo:
    """Change the list's description of one of its features."""
    feature_list = await feature_lists.owned_list(session, body.listId, user)
    ref = FeatureRef.of(body, body.description)
    item = await feature_lists.edit_feature(session, feature_list, ref)
    await session.commit()
    return _item(item)


@router.post("/list", responses=KEY_ERRORS)
async def list_list(session: SessionDep, user: CurrentUser) -> list[ListInfo]:
    """The caller's own lists."""
    return [_info(x) for x in await feature_lists.lists_of(session, user)]


@router.post("/remove", responses=OWNED | error_responses(InvalidInput))
async def list_remove(
    body: ListRemoveRequest, session: SessionDep, user: CurrentUser
) -> dict[str, str]:
    """Take a feature out of one of the caller's lists."""
    feature_list = await feature_lists.owned_list(session, body.listId, user)
    await feature_lists.remove_feature(session, feature_list, FeatureRef.of(body))
    await session.commit()
    return {"message": "removed"}


@router.post("/delete", responses=OWNED)
async def list_delete(
    body: ListIdRequest, session: SessionDep, user: CurrentUser
) -> dict[str, str]:
    """Delete one of the caller's lists."""
    feature_list = await feature_lists.owned_list(session, body.listId, user)
    await feature_lists.delete_list(session, feature_list)
    await session.commit()
    return {"message": "deleted"}
