"""Users, sign-in and API keys: people sign up and in on the pages (a session cookie),
scripts use API keys; anyone signed in manages their own profile and keys; admins manage
users."""

from datetime import timedelta

from fastapi import APIRouter, Request, Response

from interpedia_core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthorized,
)
from interpedia_core.service import error_responses
from interpedia_core.wire import RowId
from interpedia_db.models import User
from interpedia_webapi import accounts
from interpedia_webapi.deps import (
    ADMIN_ERRORS,
    CSRF_COOKIE,
    KEY_ERRORS,
    SESSION_COOKIE,
    AdminUser,
    CurrentUser,
    SessionDep,
    SettingsDep,
)
from interpedia_webapi.rate_limit import TokenBuckets
from interpedia_webapi.schemas import (
    KeyCreateResponse,
    KeyInfo,
    PasswordRequest,
    ProfileRequest,
    SignRequest,
    UserCreateRequest,
    UserCreateResponse,
    UserInfo,
    UserManageRequest,
)
from interpedia_webapi.settings import WebapiSettings

router = APIRouter(tags=["users"])


def user_info(user: User) -> UserInfo:
    return UserInfo(
        id=user.id,
        name=user.name,
        isAdmin=user.is_admin,
        displayName=user.display_name,
        disabled=user.disabled_at is not None,
        canSignIn=user.password_hash is not None,
    )


def _set_cookies(response: Response, settings: WebapiSettings, signed: accounts.SignedIn) -> None:
    """The session token where page scripts cannot read it; the CSRF token where they can."""
    age = int(timedelta(days=settings.session_days).total_seconds())
    common = {"max_age": age, "samesite": "lax", "secure": settings.secure_cookies, "path": "/"}
    response.set_cookie(SESSION_COOKIE, signed.token, httponly=True, **common)
    response.set_cookie(CSRF_COOKIE, signed.csrf, httponly=False, **common)


def _throttle(request: Request, name: str) -> None:
    """Slow password guessing: a few tries a minute per address and name, more per address."""
    buckets: TokenBuckets = request.app.state.signin_limits
    address = request.client.host if request.client else "unknown"
    buckets.take(f"{address}:{name.strip().lower()}")
    buckets.take(f"{address}:*", cost=0.25)


async def _signed_in(
    session: SessionDep, settings: WebapiSettings, user: User, response: Response
) -> UserInfo:
    signed = await accounts.start_session(session, user, timedelta(days=settings.session_days))
    await session.commit()
    _set_cookies(response, settings, signed)
    return user_info(user)


@router.post(
    "/account/signup",
    responses=error_responses(InvalidInput, Conflict, Forbidden, RateLimited),
)
async def account_signup(
    body: SignRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
) -> UserInfo:
    """Make an account with a name and password, and sign this browser in."""
    if not settings.allow_signup:
        raise Forbidden("sign-up is closed on this server; ask an admin for an account")
    _throttle(request, body.name)
    user = await accounts.create_user(session, body.name, password=body.password)
    return await _signed_in(session, settings, user, response)


@router.post("/account/signin", responses=error_responses(Unauthorized, Forbidden, RateLimited))
async def account_signin(
    body: SignRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
) -> UserInfo:
    """Sign this browser in (a session cookie and a CSRF cookie)."""
    _throttle(request, body.name)
    user = await accounts.authenticate(session, body.name, body.password)
    return await _signed_in(session, settings, user, response)


@router.post("/account/signout", responses=KEY_ERRORS)
async def account_signout(
    request: Request, response: Response, session: SessionDep, user: CurrentUser
) -> dict[str, str]:
    """End this browser's session (its cookie stops working at once)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await accounts.end_session(session, token)
        await session.commit()
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return {"message": "signed out"}


@router.get("/me", responses=KEY_ERRORS)
async def me(user: CurrentUser) -> UserInfo:
    """The caller, by its API key or sign-in cookie."""
    return user_info(user)


@router.post("/me/profile", responses=KEY_ERRORS | error_responses(InvalidInput))
async def me_profile(body: ProfileRequest, session: SessionDep, user: CurrentUser) -> UserInfo:
    """Change the caller's display name."""
    accounts.set_display_name(user, body.displayName)
    await session.commit()
    return user_info(user)


@router.post("/me/password", responses=KEY_ERRORS | error_responses(InvalidInput))
async def me_password(
    body: PasswordRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> dict[str, str]:
    """Change (or, for a key-only user, set) the caller's password; every browser signed in
    as the caller is signed out, this one signed in again."""
    await accounts.change_password(session, user, body.currentPassword, body.newPassword)
    if request.cookies.get(SESSION_COOKIE):
        await _signed_in(session, settings, user, response)
    else:
        await session.commit()
    return {"message": "password changed"}


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
    return [user_info(u) for u, _ in await accounts.list_users(session)]


@router.post("/admin/users", responses=ADMIN_ERRORS | error_responses(Conflict, InvalidInput))
async def admin_users_create(
    body: UserCreateRequest, session: SessionDep, admin: AdminUser
) -> UserCreateResponse:
    """Create a user and its first key (shown once)."""
    user = await accounts.create_user(session, body.name, is_admin=body.isAdmin)
    issued = await accounts.issue_key(session, user)
    await session.commit()
    return UserCreateResponse(**user_info(user).model_dump(), apiKey=issued.key)


@router.post(
    "/admin/users/{user_id}", responses=ADMIN_ERRORS | error_responses(NotFound, InvalidInput)
)
async def admin_users_manage(
    user_id: RowId, body: UserManageRequest, session: SessionDep, admin: AdminUser
) -> UserInfo:
    """Make or unmake an admin; disable a user (their keys and sessions stop working) or
    enable them again."""
    user = await accounts.manage_user(
        session, admin, user_id, is_admin=body.isAdmin, disabled=body.disabled
    )
    await session.commit()
    return user_info(user)
