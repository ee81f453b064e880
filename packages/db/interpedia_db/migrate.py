"""Apply and revert migrations from code (the CLI, the demo and tests call these).

`upgrade` holds a Postgres advisory lock while it runs, so processes that start at the
same time on a fresh database migrate it once, one after the other.
"""

from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"
_ADVISORY_LOCK = 0x1E7E_D1A  # any constant: only Interpedia's migrations take it


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


def head_revision() -> str:
    """The revision this code's models expect."""
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def current_revision(url: str) -> str | None:
    """The database's revision; None for a database that was never migrated."""
    with psycopg.connect(url) as conn:
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    return row[0] if row else None


def upgrade(url: str, revision: str = "head") -> None:
    with psycopg.connect(url, autocommit=True) as lock:
        lock.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK,))
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
