"""Migrations apply, revert and re-apply cleanly on the embedded server."""

import psycopg

from interpedia_db import migrate
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
