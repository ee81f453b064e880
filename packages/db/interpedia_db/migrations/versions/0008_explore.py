"""explore: feature-map coordinates per feature, `has_umap` per source, evaluations per source.

The map columns keep Neuronpedia's `Neuron` names (`umap_x`, `umap_y`, `umap_cluster`,
`umap_log_feature_sparsity`) so exports and `/api/umap` carry them unchanged. Evaluations
are Neuronpedia's `Eval` rows: one SAE-Bench-shaped JSON output per (source, eval type),
replaced when the evaluation is run again.

Revision ID: 0008_explore
Revises: 0007_graphs
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008_explore"
down_revision = "0007_graphs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for column in ("umap_x", "umap_y", "umap_log_feature_sparsity"):
        op.add_column("features", sa.Column(column, sa.Float(), nullable=True))
    op.add_column("features", sa.Column("umap_cluster", sa.Integer(), nullable=True))
    op.add_column(
        "sources",
        sa.Column("has_umap", sa.Boolean(), server_default="false", nullable=False),
    )
    op.create_table(
        "evals",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("type_name", sa.String(length=64), nullable=False),
        sa.Column("output", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["model_id", "source_id"],
            ["sources.model_id", "sources.id"],
            name=op.f("fk_evals_model_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evals")),
        sa.UniqueConstraint("model_id", "source_id", "type_name", name="uq_evals_source_type"),
    )


def downgrade() -> None:
    op.drop_table("evals")
    op.drop_column("sources", "has_umap")
    for column in ("umap_x", "umap_y", "umap_cluster", "umap_log_feature_sparsity"):
        op.drop_column("features", column)
