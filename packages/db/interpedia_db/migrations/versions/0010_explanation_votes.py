"""explanation votes: one row per (voter, explanation), Neuronpedia's `Vote`.

A vote is a person's "this explanation is right"; the feature page shows the count and
orders explanations by it. Deleting the explanation or the user deletes their votes.

Revision ID: 0010_explanation_votes
Revises: 0008_explore
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_explanation_votes"
down_revision = "0008_explore"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "explanation_votes",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("voter_id", sa.Integer(), nullable=False),
        sa.Column("explanation_id", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["voter_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["explanation_id"], ["explanations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("voter_id", "explanation_id", name="uq_explanation_votes_voter"),
    )
    op.create_index("ix_explanation_votes_explanation_id", "explanation_votes", ["explanation_id"])


def downgrade() -> None:
    op.drop_index("ix_explanation_votes_explanation_id", table_name="explanation_votes")
    op.drop_table("explanation_votes")
