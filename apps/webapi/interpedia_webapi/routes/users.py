"""Users and API keys: admins create users; anyone with a key manages their own keys."""

from fastapi import APIRouter

from interpedia_core.errors import Conflict, NotFound
from interpedia_core.service import error_responses
from interpedia_core.wire import RowId
from interpedia_webapi import accounts
from interpedia_webapi.deps import ADMIN_ERRORS, KEY_ERRORS, AdminUser, CurrentUser, SessionDep
from interpedia_webapi.schemas import (
    KeyCreateResponse,
    KeyInfo,
    UserCreateRequest,
    UserCreateResponse,
    UserInfo,
)

router = APIRouter(tags=["users"])


@router.get("/me", responses=KEY_ERRORS)
async def me(user: CurrentUser) -> UserInfo:
    """The caller, by its API key."""
    return UserInfo(id=user.id, name=user.name, isAdmin=user.is_admin)


@router.get("/me/keys", responses=KEY_ERRORS)
async def my_keys(session: SessionDep, user: CurrentUser) -> list[KeyInfo]:
    """The caller's API keys (their prefixes; the keys themselves are not stored)."""
    return [
        KeyInfo(id=k.id, prefix=k.prefix, revoked=k.revoked_at is not None)
        for k in await accounts.list_keys(session, user.id)
    ]


@router.post("/me/keys", responses=KEY_ERRORS)
async def my_keys_create(session: SessionDep, user: CurrentUser) -> KeyCreateResponse:
    """A new API key for the caller (shown once)."""
    issued = await accounts.issue_key(session, user)
    await session.commit()
    return KeyCreateResponse(
        id=issued.key_id, prefix=issued.prefix, revoked=False, apiKey=issued.key
    )


@router.delete("/me/keys/{key_id}", responses=KEY_ERRORS | error_responses(NotFound))
async def my_keys_revoke(key_id: RowId, session: SessionDep, user: CurrentUser) -> dict[str, str]:
    """Revoke one of the caller's keys; requests with it are refused from then on (401)."""
    await accounts.revoke_key(session, key_id, owner=user)
    await session.commit()
    return {"message": "revoked"}


@router.get("/admin/users", responses=ADMIN_ERRORS)
async def admin_users(session: SessionDep, admin: AdminUser) -> list[UserInfo]:
    """Every user."""
    return [
        UserInfo(id=u.id, name=u.name, isAdmin=u.is_admin)
        for u, _ in await accounts.list_users(session)
    ]


@router.post("/admin/users", responses=ADMIN_ERRORS | error_responses(Conflict))
async def admin_users_create(
    body: UserCreateRequest, session: SessionDep, admin: AdminUser
) -> UserCreateResponse:
    """Create a user and its first key (shown once)."""
    user = await accounts.create_user(session, body.name, is_admin=body.isAdmin)
    issued = await accounts.issue_key(session, user)
    await session.commit()
    return UserCreateResponse(id=user.id, name=user.name, isAdmin=user.is_admin, apiKey=issued.key)
