"""accounts: passwords, browser sessions, disabled users, and who may see what.

People sign in on the pages with a name and password (`users.password_hash`, an argon2id
hash); a browser holds a random session token whose SHA-256 is a `user_sessions` row, next
to the CSRF token that its unsafe requests must echo. Disabling a user (`disabled_at`) stops
their keys and sessions at once.

Lists, steering vectors (feature rows with `vector` set), explanations and source sets get
Neuronpedia's `Visibility` (public, unlisted, private). Existing rows stay public; the
routes choose Neuronpedia's defaults for new ones (uploaded source sets and vectors
unlisted, lists and explanations public).

Revision ID: 0012_accounts
Revises: 0011_own_work
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_accounts"
down_revision = "0011_own_work"
branch_labels = None
depends_on = None

VISIBLE = ("lists", "features", "explanations", "source_sets")


def upgrade() -> None:
    op.add_column("users", sa.Column("password_hash", sa.Text(), nullable=True))
    op.add_column(
        "users",
        sa.Column("display_name", sa.String(length=128), server_default="", nullable=False),
    )
    op.add_column("users", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "user_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_user_sessions")),
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"])
    for table in VISIBLE:
        op.add_column(
            table,
            sa.Column("visibility", sa.String(length=16), server_default="public", nullable=False),
        )
        op.create_check_constraint(
            op.f(f"ck_{table}_visibility"), table, "visibility IN ('public', 'unlisted', 'private')"
        )


def downgrade() -> None:
    for table in VISIBLE:
        op.drop_constraint(op.f(f"ck_{table}_visibility"), table, type_="check")
        op.drop_column(table, "visibility")
    op.drop_index(op.f("ix_user_sessions_user_id"), table_name="user_sessions")
    op.drop_table("user_sessions")
    op.drop_column("users", "disabled_at")
    op.drop_column("users", "display_name")
    op.drop_column("users", "password_hash")
