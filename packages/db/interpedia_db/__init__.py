"""Database models, alembic migrations, data access and the embedded PostgreSQL server."""
