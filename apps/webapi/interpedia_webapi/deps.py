"""Typed dependencies: a route's signature lists what it needs (session, caller, clients)."""

import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Cookie, Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import Forbidden, RateLimited, Unauthorized
from interpedia_core.service import error_responses
from interpedia_db.models import User
from interpedia_webapi import accounts
from interpedia_webapi.rate_limit import TokenBuckets
from interpedia_webapi.settings import WebapiSettings
from interpedia_webapi.upstream import Upstreams


def get_settings(request: Request) -> WebapiSettings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


def get_upstreams(request: Request) -> Upstreams:
    return request.app.state.upstreams


SettingsDep = Annotated[WebapiSettings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
UpstreamsDep = Annotated[Upstreams, Depends(get_upstreams)]


SESSION_COOKIE = "interpedia_session"  # HttpOnly: scripts on the page never see it
CSRF_COOKIE = "interpedia_csrf"  # readable: app.js echoes it in the x-csrf-token header
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_optional_user(
    request: Request,
    session: SessionDep,
    x_api_key: Annotated[str | None, Header(alias="x-api-key")] = None,
    x_csrf_token: Annotated[str | None, Header(alias=CSRF_HEADER)] = None,
    interpedia_session: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None,
) -> User | None:
    """The caller: by API key (scripts), else by the sign-in cookie (browsers). A key that is
    given but unknown is refused rather than ignored. A cookie alone does not authorise an
    unsafe request: another site can make the browser send it, but cannot read the CSRF
    token that has to come back with it."""
    if x_api_key:
        user = await accounts.user_for_key(session, x_api_key)
        if user is None:
            raise Unauthorized("unknown, revoked or disabled API key")
        return user
    if not interpedia_session:
        return None
    found = await accounts.user_for_session(session, interpedia_session)
    request.state.signed_in = found is not None  # the page header trusts this over the cookie
    if found is None:
        return None  # signed out, expired or disabled: the caller is anonymous
    user, csrf = found
    if request.method not in SAFE_METHODS and not (
        x_csrf_token and secrets.compare_digest(x_csrf_token, csrf)
    ):
        raise Forbidden(f"a signed-in browser's {request.method} needs the {CSRF_HEADER} header")
    return user


OptionalUser = Annotated[User | None, Depends(get_optional_user)]


async def get_current_user(user: OptionalUser) -> User:
    if user is None:
        raise Unauthorized("sign in, or send an API key in the x-api-key header")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden("this needs an admin API key")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]


def rate_limited(request: Request, user: OptionalUser) -> None:
    """Spend one token of the caller's bucket (by key if given, else by address)."""
    buckets: TokenBuckets = request.app.state.rate_limits
    caller = (
        f"user:{user.id}"
        if user is not None
        else (f"ip:{request.client.host}" if request.client else "ip:unknown")
    )
    buckets.take(caller)


RateLimitDep = Depends(rate_limited)

# What the dependencies above answer, for routes' `responses=` (403: a missing CSRF token).
KEY_ERRORS = error_responses(Unauthorized, Forbidden)  # OptionalUser, CurrentUser
ADMIN_ERRORS = error_responses(Unauthorized, Forbidden)  # AdminUser
RATE_ERRORS = error_responses(Unauthorized, Forbidden, RateLimited)  # RateLimitDep
