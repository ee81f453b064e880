"""Which database to use, and engines for it.

`resolve_database_url` is the one place that decides: `DATABASE_URL` when set
(checked to be reachable, so a typo fails with one clear line), otherwise the
embedded server, started or attached to. Callers keep the plain
`postgresql://` URL; the driver-specific forms are derived here.
"""

import asyncio
import errno
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from interpedia_core.errors import ConfigurationError
from interpedia_core.settings import CommonSettings
from interpedia_db import migrate
from interpedia_db.embedded import EmbeddedPostgres

logger = logging.getLogger(__name__)
T = TypeVar("T")


def embedded_server(settings: CommonSettings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.embedded_db_dir, settings.embedded_db_port)


def resolve_database_url(settings: CommonSettings, *, require_schema: bool = True) -> str:
    """The database this process should use; starts the embedded server if needed.

    With `require_schema`, the database must be at this code's migration: the embedded
    server (ours) is migrated on the spot; a `DATABASE_URL` that is behind is an error
    naming the command that fixes it, rather than SQL errors on the first query.
    """
    if settings.database_url:
        url = plain_url(settings.database_url)
        check_reachable(url)
    else:
        server = embedded_server(settings)
        server.ensure_running()
        url = server.url
    if require_schema:
        ensure_migrated(url, apply=not settings.database_url)
    return url


def ensure_migrated(url: str, *, apply: bool) -> None:
    current, head = migrate.current_revision(url), migrate.head_revision()
    if current == head:
        return
    if apply:
        migrate.upgrade(url)
        return
    raise ConfigurationError(
        f"the database at {redact(url)} is at migration {current or '(none)'}, this "
        f"Interpedia needs {head}: run `interpedia db migrate` (or `make migrate`)"
    )


@dataclass(frozen=True)
class Database:
    url: str  # plain postgresql:// URL
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]


@asynccontextmanager
async def open_database(settings: CommonSettings) -> AsyncIterator[Database]:
    """The configured database for one scope: a service's lifespan or a command.

    Resolved off the event loop (it may start the embedded server or migrate it); the
    engine's connections are closed when the scope ends.
    """
    url = await asyncio.to_thread(resolve_database_url, settings)
    engine = create_engine(url)
    try:
        yield Database(url, engine, create_sessionmaker(engine))
    finally:
        await engine.dispose()


def run_in_database(
    settings: CommonSettings, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]
) -> T:
    """Run `work(sessionmaker)` on the configured database, for commands outside a server."""

    async def scope() -> T:
        async with open_database(settings) as database:
            return await work(database.sessionmaker)

    return asyncio.run(scope())


def plain_url(url: str) -> str:
    """`postgresql+asyncpg://...` and friends → `postgresql://...`."""
    parts = urlsplit(url)
    scheme = "postgresql" if parts.scheme.startswith(("postgresql", "postgres")) else parts.scheme
    if scheme != "postgresql":
        raise ConfigurationError(f"DATABASE_URL must be a postgresql:// URL, not {parts.scheme}://")
    return urlunsplit(parts._replace(scheme=scheme))


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def check_reachable(url: str) -> None:
    try:
        with psycopg.connect(url, connect_timeout=5):
            pass
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
        raise ConfigurationError(
            f"cannot connect to the database at {redact(url)} ({reason}). "
            "Fix DATABASE_URL, or unset it to use the embedded server."
        ) from None


def async_url(url: str) -> str:
    return plain_url(url).replace("postgresql://", "postgresql+asyncpg://", 1)


def sync_url(url: str) -> str:
    return plain_url(url).replace("postgresql://", "postgresql+psycopg://", 1)


def create_engine(url: str, **kwargs: object) -> AsyncEngine:
    return create_async_engine(async_url(url), pool_pre_ping=True, **kwargs)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under `session`, inside its transaction (for COPY)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


# SQLSTATEs of a server that is shutting down, restarting or gone (classes 08 and 57P).
_GONE_SQLSTATES = {"08000", "08001", "08003", "08004", "08006", "57P01", "57P02", "57P03"}
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EPIPE,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
}


def lost_connection(exc: BaseException) -> bool:
    """Whether an error means the database went away, rather than refused a statement.

    The two call for opposite handling: a refused statement is the data's fault and
    is reported against it; a lost connection is nobody's data's fault, and the work
    should wait for the database and be retried.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, asyncpg.PostgresConnectionError):
            return True
        if isinstance(seen, asyncpg.InterfaceError) and "connection is closed" in str(seen):
            return True
        if getattr(seen, "sqlstate", None) in _GONE_SQLSTATES:
            return True
        if isinstance(seen, ConnectionError | TimeoutError | socket.gaierror):
            return True
        if type(seen) is OSError and (
            seen.errno in _NETWORK_ERRNOS or "Connect call failed" in str(seen)
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
