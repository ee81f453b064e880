"""Migrations apply, revert and re-apply cleanly on the embedded server."""

import psycopg
import pytest

from interpedia_core.errors import ConfigurationError
from interpedia_core.settings import CommonSettings
from interpedia_db import migrate
from interpedia_db.connect import resolve_database_url
from interpedia_db.embedded import EmbeddedPostgres


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT schemaname || '.' || tablename FROM pg_tables "
            "WHERE schemaname IN ('public', 'procrastinate')"
        ).fetchall()
    return {r[0] for r in rows}


def test_upgrade_downgrade_upgrade(server_root, free_port):
    server = EmbeddedPostgres(server_root / "pg", free_port)
    server.ensure_running()
    try:
        migrate.upgrade(server.url)
        tables = _tables(server.url)
        assert {
            "public.features",
            "public.explanation_embeddings",
            "public.training_runs",
            "public.import_files",
            "procrastinate.procrastinate_jobs",
        } <= tables

        migrate.downgrade(server.url, "base")
        assert _tables(server.url) == {"public.alembic_version"}
        with psycopg.connect(server.url) as conn:
            assert conn.execute(
                "SELECT count(*) FROM pg_extension WHERE extname='vector'"
            ).fetchone() == (0,)

        migrate.upgrade(server.url)
        assert _tables(server.url) == tables
    finally:
        server.stop()


def test_a_database_behind_the_code_is_migrated_or_named(server_root, free_port):
    """Ours (embedded) is brought up to date on connect; someone else's is an error that says
    which command fixes it, instead of SQL errors on the first query."""
    server = EmbeddedPostgres(server_root / "postgres", free_port)
    server.ensure_running()
    try:
        external = CommonSettings(database_url=server.url)
        with pytest.raises(ConfigurationError, match="run `interpedia db migrate`"):
            resolve_database_url(external)
        assert migrate.current_revision(server.url) is None
        assert resolve_database_url(external, require_schema=False) == server.url

        embedded = CommonSettings(
            data_dir=server_root, embedded_db_port=free_port, database_url=None
        )
        assert resolve_database_url(embedded) == server.url
        assert migrate.current_revision(server.url) == migrate.head_revision()
        assert resolve_database_url(external) == server.url
    finally:
        server.stop()
