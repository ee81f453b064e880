"""job queue: Procrastinate's schema, in its own PostgreSQL schema `procrastinate`.

Keeping the queue's tables, types and functions in one schema lets the
downgrade drop it in one statement and keeps our `public` schema ours.
Connections that use the queue put `procrastinate` first on their search_path
(see interpedia_jobs.queue). The SQL is Procrastinate's own `schema.sql`, from
the installed version; Procrastinate's upgrade scripts apply on top of it.

Revision ID: 0002
Revises: 0001
"""

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS procrastinate")
    op.execute("SET LOCAL search_path TO procrastinate, public")
    # Driver-level: the SQL holds % and : that SQLAlchemy would read as parameters.
    op.get_bind().exec_driver_sql(SchemaManager.get_schema().replace("%", "%%"))
    op.execute("RESET search_path")


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS procrastinate CASCADE")
