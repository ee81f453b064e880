"""initial schema: models, sources, features, activations, explanations, embeddings,
scores, lists, users and keys, steering cache, training runs, imports.

Embedding models are seeded with the local default (all-MiniLM-L6-v2, 384 dims) and
Neuronpedia's exported vectors (text-embedding-3-large at 256 dims), each with a
partial HNSW cosine index on `embedding::vector(dims)`.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 01:40:57.243981
"""

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

SEEDED_EMBEDDING_MODELS = {"all-MiniLM-L6-v2": 384, "openai/text-embedding-3-large@256": 256}

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "embedding_models",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_embedding_models")),
    )
    op.create_table(
        "import_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=32), server_default="listed", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_jobs")),
    )
    op.create_table(
        "job_progress",
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("done", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=True),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_progress")),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("hf_name", sa.String(length=256), nullable=True),
        sa.Column("layers", sa.Integer(), nullable=False),
        sa.Column("d_model", sa.Integer(), nullable=False),
        sa.Column("instruct", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("inference_url", sa.String(length=512), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
    )
    op.create_table(
        "source_releases",
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("urls", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("creator_name", sa.String(length=256), server_default="", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_source_releases")),
    )
    op.create_table(
        "steer_cache",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("request", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_steer_cache")),
    )
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("hook_name", sa.String(length=256), nullable=False),
        sa.Column("architecture", sa.String(length=64), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=32), server_default="queued", nullable=False),
        sa.Column("output_path", sa.Text(), nullable=True),
        sa.Column("source_id", sa.String(length=128), nullable=True),
        sa.Column(
            "final_metrics",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_runs")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("is_admin", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_keys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_user_id"), "api_keys", ["user_id"], unique=False)
    op.create_table(
        "import_files",
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=32), server_default="listed", nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("rows_imported", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["import_jobs.id"],
            name=op.f("fk_import_files_import_id_import_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("import_id", "path", name=op.f("pk_import_files")),
    )
    op.create_table(
        "lists",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_lists_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lists")),
    )
    op.create_table(
        "source_sets",
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("type", sa.String(length=64), server_default="sae", nullable=False),
        sa.Column("release_name", sa.String(length=256), nullable=True),
        sa.Column("allow_inference_search", sa.Boolean(), server_default="true", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_source_sets_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["release_name"],
            ["source_releases.name"],
            name=op.f("fk_source_sets_release_name_source_releases"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("model_id", "name", name=op.f("pk_source_sets")),
    )
    op.create_table(
        "training_metrics",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("n_tokens", sa.BigInteger(), nullable=False),
        sa.Column("values", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["training_runs.id"],
            name=op.f("fk_training_metrics_run_id_training_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "step", name=op.f("pk_training_metrics")),
    )
    op.create_table(
        "sources",
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("set_name", sa.String(length=128), nullable=False),
        sa.Column("hook_name", sa.String(length=256), nullable=False),
        sa.Column("layer", sa.Integer(), nullable=False),
        sa.Column("architecture", sa.String(length=64), nullable=False),
        sa.Column("d_sae", sa.Integer(), nullable=False),
        sa.Column("weights_uri", sa.Text(), nullable=True),
        sa.Column(
            "saelens_config",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("has_dashboards", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("inference_enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("num_prompts", sa.Integer(), nullable=True),
        sa.Column("num_tokens_in_prompt", sa.Integer(), nullable=True),
        sa.Column("dataset", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["model_id", "set_name"],
            ["source_sets.model_id", "source_sets.name"],
            name=op.f("fk_sources_model_id_source_sets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_sources_model_id_models"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("model_id", "id", name=op.f("pk_sources")),
    )
    op.create_table(
        "features",
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("max_act", sa.Float(), nullable=True),
        sa.Column("frac_nonzero", sa.Float(), nullable=True),
        sa.Column("pos_str", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("pos_values", postgresql.ARRAY(sa.REAL()), server_default="{}", nullable=False),
        sa.Column("neg_str", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("neg_values", postgresql.ARRAY(sa.REAL()), server_default="{}", nullable=False),
        sa.Column(
            "freq_hist_heights", postgresql.ARRAY(sa.REAL()), server_default="{}", nullable=False
        ),
        sa.Column(
            "freq_hist_values", postgresql.ARRAY(sa.REAL()), server_default="{}", nullable=False
        ),
        sa.Column(
            "logits_hist_heights", postgresql.ARRAY(sa.REAL()), server_default="{}", nullable=False
        ),
        sa.Column(
            "logits_hist_values", postgresql.ARRAY(sa.REAL()), server_default="{}", nullable=False
        ),
        sa.Column("vector", postgresql.ARRAY(sa.REAL()), nullable=True),
        sa.Column("hook_name", sa.String(length=256), nullable=True),
        sa.Column("default_steer_strength", sa.Float(), server_default="10", nullable=False),
        sa.Column(
            "topk_cos_sim_indices",
            postgresql.ARRAY(sa.Integer()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "topk_cos_sim_values", postgresql.ARRAY(sa.REAL()), server_default="{}", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["model_id", "source_id"],
            ["sources.model_id", "sources.id"],
            name=op.f("fk_features_model_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "source_id", "index", name=op.f("pk_features")),
    )
    op.create_table(
        "activations",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("tokens", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("values", postgresql.ARRAY(sa.REAL()), nullable=False),
        sa.Column("max_value", sa.Float(), nullable=False),
        sa.Column("max_value_token_index", sa.Integer(), nullable=False),
        sa.Column("min_value", sa.Float(), nullable=True),
        sa.Column("bin_min", sa.Float(), nullable=True),
        sa.Column("bin_max", sa.Float(), nullable=True),
        sa.Column("bin_contains", sa.Float(), nullable=True),
        sa.Column("data_index", sa.BigInteger(), nullable=True),
        sa.Column("data_source", sa.Text(), nullable=True),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["model_id", "source_id", "index"],
            ["features.model_id", "features.source_id", "features.index"],
            name=op.f("fk_activations_model_id_features"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activations")),
        sa.UniqueConstraint("external_id", name=op.f("uq_activations_external_id")),
    )
    op.create_index(
        "ix_activations_feature_max",
        "activations",
        ["model_id", "source_id", "index", "max_value"],
        unique=False,
    )
    op.create_table(
        "explanations",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("type_name", sa.String(length=128), nullable=False),
        sa.Column("explanation_model_name", sa.String(length=256), nullable=True),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english', description)", persisted=True),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_explanations_author_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["model_id", "source_id", "index"],
            ["features.model_id", "features.source_id", "features.index"],
            name=op.f("fk_explanations_model_id_features"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_explanations")),
        sa.UniqueConstraint("external_id", name=op.f("uq_explanations_external_id")),
    )
    op.create_index(
        "ix_explanations_feature", "explanations", ["model_id", "source_id", "index"], unique=False
    )
    op.create_index(
        "ix_explanations_search_vector",
        "explanations",
        ["search_vector"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_table(
        "explanation_embeddings",
        sa.Column("explanation_id", sa.BigInteger(), nullable=False),
        sa.Column("embedding_model", sa.String(length=128), nullable=False),
        sa.Column("embedding", pgvector.sqlalchemy.vector.VECTOR(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["embedding_model"],
            ["embedding_models.name"],
            name=op.f("fk_explanation_embeddings_embedding_model_embedding_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["explanation_id"],
            ["explanations.id"],
            name=op.f("fk_explanation_embeddings_explanation_id_explanations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "explanation_id", "embedding_model", name=op.f("pk_explanation_embeddings")
        ),
    )
    op.create_table(
        "explanation_scores",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("explanation_id", sa.BigInteger(), nullable=False),
        sa.Column("type_name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("scorer_model", sa.String(length=256), nullable=True),
        sa.Column(
            "details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["explanation_id"],
            ["explanations.id"],
            name=op.f("fk_explanation_scores_explanation_id_explanations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_explanation_scores")),
    )
    op.create_index(
        op.f("ix_explanation_scores_explanation_id"),
        "explanation_scores",
        ["explanation_id"],
        unique=False,
    )
    op.create_table(
        "list_items",
        sa.Column("list_id", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("activation_id", sa.BigInteger(), nullable=True),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "added_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["activation_id"],
            ["activations.id"],
            name=op.f("fk_list_items_activation_id_activations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_list_items_list_id_lists"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["model_id", "source_id", "index"],
            ["features.model_id", "features.source_id", "features.index"],
            name=op.f("fk_list_items_model_id_features"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "list_id", "model_id", "source_id", "index", name=op.f("pk_list_items")
        ),
    )
    for name, dims in SEEDED_EMBEDDING_MODELS.items():
        op.execute(
            sa.text(
                "INSERT INTO embedding_models (name, dimensions) VALUES (:name, :dims)"
            ).bindparams(name=name, dims=dims)
        )
        op.execute(hnsw_index_sql(name, dims))


def hnsw_index_sql(name: str, dims: int) -> str:
    """Frozen copy of interpedia_db.embeddings.hnsw_index_sql (migrations don't import app code)."""
    slug = "".join(c if c.isalnum() else "_" for c in name.lower())
    return (
        f"CREATE INDEX IF NOT EXISTS ix_embeddings_hnsw_{slug} "
        f"ON explanation_embeddings USING hnsw ((embedding::vector({dims})) vector_cosine_ops) "
        f"WHERE embedding_model = '{name}'"
    )


def downgrade() -> None:
    op.drop_table("list_items")
    op.drop_index(op.f("ix_explanation_scores_explanation_id"), table_name="explanation_scores")
    op.drop_table("explanation_scores")
    op.drop_table("explanation_embeddings")
    op.drop_index(
        "ix_explanations_search_vector", table_name="explanations", postgresql_using="gin"
    )
    op.drop_index("ix_explanations_feature", table_name="explanations")
    op.drop_table("explanations")
    op.drop_index("ix_activations_feature_max", table_name="activations")
    op.drop_table("activations")
    op.drop_table("features")
    op.drop_table("sources")
    op.drop_table("training_metrics")
    op.drop_table("source_sets")
    op.drop_table("lists")
    op.drop_table("import_files")
    op.drop_index(op.f("ix_api_keys_user_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("users")
    op.drop_table("training_runs")
    op.drop_table("steer_cache")
    op.drop_table("source_releases")
    op.drop_table("models")
    op.drop_table("import_jobs")
    op.drop_table("job_progress")
    op.drop_table("embedding_models")
    op.execute("DROP EXTENSION IF EXISTS vector")
