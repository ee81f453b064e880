"""Which database to use, and engines for it.

`resolve_database_url` is the one place that decides: `DATABASE_URL` when set
(checked to be reachable, so a typo fails with one clear line), otherwise the
embedded server, started or attached to. Callers keep the plain
`postgresql://` URL; the driver-specific forms are derived here.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
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


def run_in_database(
    settings: CommonSettings, work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]
) -> T:
    """Run `work(sessionmaker)` on the configured database, for commands outside a server."""

    async def scope() -> T:
        engine = create_engine(await asyncio.to_thread(resolve_database_url, settings))
        try:
            return await work(create_sessionmaker(engine))
        finally:
            await engine.dispose()

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


def database_url_of(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    """The plain `postgresql://` URL a sessionmaker connects to (password included), for
    the few callers that need a second kind of connection to the same database (the
    job queue's)."""
    engine: AsyncEngine = sessionmaker.kw["bind"]
    return plain_url(engine.url.render_as_string(hide_password=False))


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under `session`, inside its transaction (for COPY)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection
