"""Users and API keys: admins create users; anyone with a key manages their own keys."""

from fastapi import APIRouter

from interpedia_webapi import accounts
from interpedia_webapi.deps import AdminUser, CurrentUser, SessionDep
from interpedia_webapi.schemas import (
    KeyCreateResponse,
    KeyInfo,
    UserCreateRequest,
    UserCreateResponse,
    UserInfo,
)

router = APIRouter(tags=["users"])


@router.get("/me")
async def me(user: CurrentUser) -> UserInfo:
    return UserInfo(id=user.id, name=user.name, isAdmin=user.is_admin)


@router.get("/me/keys")
async def my_keys(session: SessionDep, user: CurrentUser) -> list[KeyInfo]:
    return [
        KeyInfo(id=k.id, prefix=k.prefix, revoked=k.revoked_at is not None)
        for k in await accounts.list_keys(session, user.id)
    ]


@router.post("/me/keys")
async def my_keys_create(session: SessionDep, user: CurrentUser) -> KeyCreateResponse:
    issued = await accounts.issue_key(session, user)
    await session.commit()
    return KeyCreateResponse(
        id=issued.key_id, prefix=issued.prefix, revoked=False, apiKey=issued.key
    )


@router.delete("/me/keys/{key_id}")
async def my_keys_revoke(key_id: int, session: SessionDep, user: CurrentUser) -> dict[str, str]:
    await accounts.revoke_key(session, key_id, owner=user)
    await session.commit()
    return {"message": "revoked"}


@router.get("/admin/users")
async def admin_users(session: SessionDep, admin: AdminUser) -> list[UserInfo]:
    return [
        UserInfo(id=u.id, name=u.name, isAdmin=u.is_admin)
        for u, _ in await accounts.list_users(session)
    ]


@router.post("/admin/users")
async def admin_users_create(
    body: UserCreateRequest, session: SessionDep, admin: AdminUser
) -> UserCreateResponse:
    """Create a user and its first key (shown once)."""
    user = await accounts.create_user(session, body.name, is_admin=body.isAdmin)
    issued = await accounts.issue_key(session, user)
    await session.commit()
    return UserCreateResponse(id=user.id, name=user.name, isAdmin=user.is_admin, apiKey=issued.key)
