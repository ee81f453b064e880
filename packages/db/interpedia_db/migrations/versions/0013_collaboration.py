"""collaboration: comments on features and lists, bookmarks, a list's default test text,
and who ran a saved steering run and what they asked.

Neuronpedia's `Comment`, `ListComment` and `Bookmark` tables and `List.defaultTestText`.
A steering run is already stored once per normalised request (`steer_cache`); its key is
the share id `/api/steer-load` reads; `asked` keeps the web request (features by key) so
the link reopens the page as it was, and `creator_id` lets a person list the runs they
made. Deleting a feature, list or user deletes their comments and bookmarks.

Revision ID: 0013_collaboration
Revises: 0011_own_work
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013_collaboration"
down_revision = "0011_own_work"
branch_labels = None
depends_on = None


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def _feature_columns() -> list[sa.Column]:
    return [
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
    ]


def _feature_key(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["model_id", "source_id", "index"],
        ["features.model_id", "features.source_id", "features.index"],
        name=f"fk_{table}_model_id_features",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.add_column("lists", sa.Column("default_test_text", sa.Text(), nullable=True))
    op.add_column("steer_cache", sa.Column("asked", postgresql.JSONB(), nullable=True))
    op.add_column("steer_cache", sa.Column("creator_id", sa.Integer(), nullable=True))
    op.create_foreign_key(
        "fk_steer_cache_creator_id_users",
        "steer_cache",
        "users",
        ["creator_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index("ix_steer_cache_creator_id", "steer_cache", ["creator_id"])

    op.create_table(
        "comments",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        *_feature_columns(),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        _created_at(),
        _feature_key("comments"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_comments_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_comments"),
    )
    op.create_index("ix_comments_feature", "comments", ["model_id", "source_id", "index"])
    op.create_index("ix_comments_user_id", "comments", ["user_id"])

    op.create_table(
        "list_comments",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("list_id", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name="fk_list_comments_list_id_lists", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_list_comments_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_list_comments"),
    )
    op.create_index("ix_list_comments_list_id", "list_comments", ["list_id"])
    op.create_index("ix_list_comments_user_id", "list_comments", ["user_id"])

    op.create_table(
        "bookmarks",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        *_feature_columns(),
        _created_at(),
        _feature_key("bookmarks"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_bookmarks_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_bookmarks"),
        sa.UniqueConstraint(
            "user_id", "model_id", "source_id", "index", name="uq_bookmarks_feature"
        ),
    )


def downgrade() -> None:
    op.drop_table("bookmarks")
    op.drop_table("list_comments")
    op.drop_table("comments")
    op.drop_index("ix_steer_cache_creator_id", table_name="steer_cache")
    op.drop_constraint("fk_steer_cache_creator_id_users", "steer_cache", type_="foreignkey")
    op.drop_column("steer_cache", "creator_id")
    op.drop_column("steer_cache", "asked")
    op.drop_column("lists", "default_test_text")
