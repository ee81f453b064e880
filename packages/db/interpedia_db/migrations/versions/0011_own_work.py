"""own work: who created a model, release, source set or steering vector; vector labels;
a model's website and a source set's links (what `model/new` and `source-set/new` take).

Neuronpedia keeps `creatorId` on `Model`, `SourceRelease`, `SourceSet` and `Neuron`; a
custom steering vector is a `Neuron` row with `vector`, `vectorLabel` and `hookName` set,
in a source `<layer>-neuronpedia-<hook>` of its own. The same columns here let the owner
(and only the owner, or an admin) change or delete what they brought. A user's vector
labels are unique per model, so a script that uploads twice gets a clear 409.

Revision ID: 0011_own_work
Revises: 0010_explanation_votes
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011_own_work"
down_revision = "0010_explanation_votes"
branch_labels = None
depends_on = None

OWNED = ("models", "source_releases", "source_sets", "features")


def upgrade() -> None:
    for table in OWNED:
        op.add_column(table, sa.Column("creator_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f(f"fk_{table}_creator_id_users"),
            table,
            "users",
            ["creator_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.add_column("features", sa.Column("vector_label", sa.String(length=256), nullable=True))
    op.add_column("models", sa.Column("website", sa.String(length=512), nullable=True))
    op.add_column(
        "source_sets",
        sa.Column("urls", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
    )
    op.create_index(
        "uq_features_vector_label",
        "features",
        ["creator_id", "model_id", "vector_label"],
        unique=True,
        postgresql_where=sa.text("vector_label IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_features_vector_label", table_name="features")
    op.drop_column("features", "vector_label")
    op.drop_column("models", "website")
    op.drop_column("source_sets", "urls")
    for table in OWNED:
        op.drop_constraint(op.f(f"fk_{table}_creator_id_users"), table, type_="foreignkey")
        op.drop_column(table, "creator_id")
