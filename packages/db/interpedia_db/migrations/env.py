"""Alembic environment: migrations run synchronously over psycopg on the given URL."""

from alembic import context
from sqlalchemy import create_engine, pool

from interpedia_db.connect import sync_url
from interpedia_db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = create_engine(
        sync_url(config.get_main_option("sqlalchemy.url")), poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
