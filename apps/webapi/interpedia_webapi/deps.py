"""Typed dependencies: a route's signature lists what it needs (session, caller, clients)."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
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


async def get_optional_user(
    session: SessionDep,
    x_api_key: Annotated[str | None, Header(alias="x-api-key")] = None,
) -> User | None:
    """The key's user; a key that is given but unknown is refused rather than ignored."""
    if not x_api_key:
        return None
    user = await accounts.user_for_key(session, x_api_key)
    if user is None:
        raise Unauthorized("unknown or revoked API key")
    return user


OptionalUser = Annotated[User | None, Depends(get_optional_user)]


async def get_current_user(user: OptionalUser) -> User:
    if user is None:
        raise Unauthorized("this needs an API key in the x-api-key header")
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

# What the dependencies above answer, for routes' `responses=`.
KEY_ERRORS = error_responses(Unauthorized)  # OptionalUser, CurrentUser
ADMIN_ERRORS = error_responses(Unauthorized, Forbidden)  # AdminUser
RATE_ERRORS = error_responses(Unauthorized, RateLimited)  # RateLimitDep
