"""Pytest fixtures shared by every Interpedia test suite (registered as a pytest11 plugin).

- `embedded_postgres`: a throwaway embedded PostgreSQL for the test session, in a
  temp dir on a free port (starts in about a second), stopped at the end.
- `database_url`: that server, migrated to head.
- `make_database`: another migrated database on it, for tests whose writes (fuzzing,
  queued jobs) must not meet other tests' rows.
- `db_sessionmaker`: an async sessionmaker on it.
- `free_port`: a free TCP port on 127.0.0.1; `server_root`: a folder for a server's data.
- `s3_endpoint`: a real S3-compatible server (moto) on 127.0.0.1 for the session; see
  `interpedia_testing.s3` for Neuronpedia's bucket layout.
- `subnormal_floats`: the test's thread computes with subnormal floats again (the fuzz
  tests: hypothesis refuses to generate floats where they flush to zero).
Fixtures that need the language-model runtime import it lazily, so suites that
don't use models don't pay for torch.
"""

import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interpedia_db import migrate
from interpedia_db.connect import create_engine, create_sessionmaker
from interpedia_db.embedded import EmbeddedPostgres
from interpedia_testing.net import free_port as _free_port


def _server_root() -> Path:
    # Not under pytest's tmp_path: every pytest start resets /tmp/pytest-of-<user> to 0700,
    # which would lock a server running as another system user out of its own data.
    return Path(tempfile.mkdtemp(prefix="interpedia-pg-"))


@pytest.fixture(scope="session")
def server_root_factory() -> Iterator[Callable[[], Path]]:
    """Makes fresh folders for servers' data; all are removed at the end of the session."""
    roots: list[Path] = []

    def make() -> Path:
        roots.append(_server_root())
        return roots[-1]

    yield make
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def server_root(server_root_factory: Callable[[], Path]) -> Path:
    """A fresh folder for an embedded server's data."""
    return server_root_factory()


@pytest.fixture(scope="session")
def embedded_postgres() -> Iterator[EmbeddedPostgres]:
    root = _server_root()
    server = EmbeddedPostgres(root / "postgres", _free_port())
    server.ensure_running()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(embedded_postgres: EmbeddedPostgres) -> str:
    migrate.upgrade(embedded_postgres.url)
    return embedded_postgres.url


@pytest.fixture(scope="session")
def make_database(embedded_postgres: EmbeddedPostgres) -> Callable[[str], str]:
    """`make_database(name)`: a fresh database `name` on the session's server, migrated; its URL."""

    def make(name: str) -> str:
        server_url = embedded_postgres.url.rsplit("/", 1)[0]
        with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"{server_url}/{name}"
        migrate.upgrade(url)
        return url

    return make


@pytest.fixture(scope="session")
async def db_sessionmaker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from interpedia_testing.s3 import moto_server

    with moto_server() as url:
        yield url


@pytest.fixture
def free_port() -> int:
    return _free_port()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The monorepo's root (where the Makefile is)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "Makefile").exists() and (parent / "apps").is_dir():
            return parent
    raise RuntimeError("run the tests from an Interpedia checkout")


@pytest.fixture
def subnormal_floats() -> None:
    """Turn off the flush-to-zero mode an earlier test's model load left on this thread.

    CPU training and the model runtime call `torch.set_flush_denormal(True)` (denormals
    make CPU steps several times slower); the mode belongs to the thread, so in one pytest
    process it outlives that test, and hypothesis then refuses to build any float strategy.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_flush_denormal(False)
