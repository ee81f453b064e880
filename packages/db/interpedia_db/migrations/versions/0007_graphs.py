"""attribution graphs: graphs (metadata + gzipped Neuronpedia graph JSON), saved subgraphs,
and uploads in flight (Neuronpedia's signed-put / save-to-db flow).

Revision ID: 0007_graphs
Revises: 0003_import_listing
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_graphs"
down_revision = "0003_import_listing"
branch_labels = None
depends_on = None


def _timestamp(name: str) -> sa.Column:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "graphs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("slug", sa.String(length=128), nullable=False),
        sa.Column("source_set_name", sa.String(length=128), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column(
            "prompt_tokens", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("title_prefix", sa.String(length=256), server_default="", nullable=False),
        sa.Column("is_featured", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("n_nodes", sa.Integer(), nullable=False),
        sa.Column("n_links", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("data_gzip", sa.LargeBinary(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_graphs_model_id_models"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_graphs_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_graphs")),
        sa.UniqueConstraint("model_id", "slug", name="uq_graphs_model_id_slug"),
    )
    op.create_index(op.f("ix_graphs_user_id"), "graphs", ["user_id"])
    op.create_table(
        "graph_subgraphs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("graph_id", sa.String(length=32), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=True),
        sa.Column("pinned_ids", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("supernodes", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("clerps", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("pruning_threshold", sa.Float(), nullable=True),
        sa.Column("density_threshold", sa.Float(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["graph_id"],
            ["graphs.id"],
            name=op.f("fk_graph_subgraphs_graph_id_graphs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_graph_subgraphs_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_graph_subgraphs")),
    )
    op.create_index(op.f("ix_graph_subgraphs_graph_id"), "graph_subgraphs", ["graph_id"])
    op.create_index(op.f("ix_graph_subgraphs_user_id"), "graph_subgraphs", ["user_id"])
    op.create_table(
        "graph_uploads",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=256), nullable=False),
        sa.Column("content_length", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_graph_uploads_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_graph_uploads")),
    )
    op.create_index(op.f("ix_graph_uploads_user_id"), "graph_uploads", ["user_id"])


def downgrade() -> None:
    op.drop_table("graph_uploads")
    op.drop_table("graph_subgraphs")
    op.drop_table("graphs")
