"""The Interpedia database: every table the platform stores, in one place.

Naming follows the research stack (`d_sae`, `hook_name`) and Neuronpedia's
concepts (model → source set → source → feature). A *source* is one SAE (or a
set of raw neurons) at one hook of one model, with an id like `6-res-demo`.
Features are keyed by (model_id, source_id, index), as Neuronpedia keys them.

Embeddings live in their own table with the embedding model's name beside each
vector, because one database holds vectors from several models of different
widths (a local 384-dim model, imported 256-dim OpenAI vectors). pgvector can
only index a fixed width, so each embedding model gets a partial HNSW index on
`embedding::vector(dims)` (see `embeddings.ensure_embedding_index`).
"""

from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

FloatArray = ARRAY(REAL)
TextArray = ARRAY(Text)
IntArray = ARRAY(Integer)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


# --- models and sources ---------------------------------------------------------------------


class Model(Base):
    """A language model, served by one inference process."""

    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # e.g. "smollm2-135m"
    display_name: Mapped[str] = mapped_column(String(256))
    hf_name: Mapped[str | None] = mapped_column(String(256))  # hub id or local folder
    layers: Mapped[int] = mapped_column(Integer)
    d_model: Mapped[int] = mapped_column(Integer)
    instruct: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    inference_url: Mapped[str | None] = mapped_column(String(512))
    website: Mapped[str | None] = mapped_column(String(512))
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created_at()


class SourceRelease(Base):
    """A published group of source sets (a SAELens release, a paper's SAEs)."""

    __tablename__ = "source_releases"

    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    urls: Mapped[list[str]] = mapped_column(TextArray, default=list, server_default="{}")
    creator_name: Mapped[str] = mapped_column(String(256), default="", server_default="")
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _created_at()


class SourceSet(Base):
    """SAEs of one kind across layers of a model, e.g. `res-demo`."""

    __tablename__ = "source_sets"

    model_id: Mapped[str] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    type: Mapped[str] = mapped_column(String(64), default="sae", server_default="sae")
    release_name: Mapped[str | None] = mapped_column(
        ForeignKey("source_releases.name", ondelete="SET NULL")
    )
    allow_inference_search: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default="true"
    )
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    urls: Mapped[list[str]] = mapped_column(TextArray, default=list, server_default="{}")
    created_at: Mapped[datetime] = _created_at()


class Source(Base):
    """One SAE (or neuron set) at one hook, e.g. `6-res-demo`."""

    __tablename__ = "sources"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_id", "set_name"],
            ["source_sets.model_id", "source_sets.name"],
            ondelete="CASCADE",
        ),
    )

    model_id: Mapped[str] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    set_name: Mapped[str] = mapped_column(String(128))
    hook_name: Mapped[str] = mapped_column(String(256))
    layer: Mapped[int] = mapped_column(Integer)
    architecture: Mapped[str] = mapped_column(String(64))  # standard, topk, jumprelu, neurons...
    d_sae: Mapped[int] = mapped_column(Integer)
    weights_uri: Mapped[str | None] = mapped_column(Text)  # SAELens folder, or release:id
    saelens_config: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    has_dashboards: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # Every feature has feature-map coordinates (`umap_*` on its row).
    has_umap: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    inference_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    num_prompts: Mapped[int | None] = mapped_column(Integer)
    num_tokens_in_prompt: Mapped[int | None] = mapped_column(Integer)
    dataset: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()


# --- features and their dashboards ------------------------------------------------------------


class Feature(Base):
    """A feature's dashboard statistics; field meanings follow Neuronpedia's `Neuron` rows."""

    __tablename__ = "features"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_id", "source_id"], ["sources.model_id", "sources.id"], ondelete="CASCADE"
        ),
        Index(
            "uq_features_vector_label",
            "creator_id",
            "model_id",
            "vector_label",
            unique=True,
            postgresql_where=text("vector_label IS NOT NULL"),
        ),
    )

    model_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    max_act: Mapped[float | None] = mapped_column(Float)
    frac_nonzero: Mapped[float | None] = mapped_column(Float)
    pos_str: Mapped[list[str]] = mapped_column(TextArray, default=list, server_default="{}")
    pos_values: Mapped[list[float]] = mapped_column(FloatArray, default=list, server_default="{}")
    neg_str: Mapped[list[str]] = mapped_column(TextArray, default=list, server_default="{}")
    neg_values: Mapped[list[float]] = mapped_column(FloatArray, default=list, server_default="{}")
    freq_hist_heights: Mapped[list[float]] = mapped_column(
        FloatArray, default=list, server_default="{}"
    )
    freq_hist_values: Mapped[list[float]] = mapped_column(
        FloatArray, default=list, server_default="{}"
    )
    logits_hist_heights: Mapped[list[float]] = mapped_column(
        FloatArray, default=list, server_default="{}"
    )
    logits_hist_values: Mapped[list[float]] = mapped_column(
        FloatArray, default=list, server_default="{}"
    )
    # The decoder direction, when stored inline (imports, vectors); otherwise read from the SAE.
    vector: Mapped[list[float] | None] = mapped_column(FloatArray)
    hook_name: Mapped[str | None] = mapped_column(String(256))
    default_steer_strength: Mapped[float] = mapped_column(Float, default=10.0, server_default="10")
    # A custom steering vector (vector/new) has a label, unique per creator and model.
    vector_label: Mapped[str | None] = mapped_column(String(256))
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    topk_cos_sim_indices: Mapped[list[int]] = mapped_column(
        IntArray, default=list, server_default="{}"
    )
    topk_cos_sim_values: Mapped[list[float]] = mapped_column(
        FloatArray, default=list, server_default="{}"
    )
    # The feature map: a 2-D UMAP of the source's decoder directions, a cluster of it,
    # and log10 of the density (NULL for a feature that never fired).
    umap_x: Mapped[float | None] = mapped_column(Float)
    umap_y: Mapped[float | None] = mapped_column(Float)
    umap_cluster: Mapped[int | None] = mapped_column(Integer)
    umap_log_feature_sparsity: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = _created_at()


class Activation(Base):
    """One example text for a feature: its tokens and the feature's value on each."""

    __tablename__ = "activations"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_id", "source_id", "index"],
            ["features.model_id", "features.source_id", "features.index"],
            ondelete="CASCADE",
        ),
        Index("ix_activations_feature_max", "model_id", "source_id", "index", "max_value"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(128))
    source_id: Mapped[str] = mapped_column(String(128))
    index: Mapped[int] = mapped_column(Integer)
    tokens: Mapped[list[str]] = mapped_column(TextArray)
    values: Mapped[list[float]] = mapped_column(FloatArray)
    max_value: Mapped[float] = mapped_column(Float)
    max_value_token_index: Mapped[int] = mapped_column(Integer)
    min_value: Mapped[float | None] = mapped_column(Float)
    # The quantile bin this example was sampled from; NULL for the top-k examples.
    bin_min: Mapped[float | None] = mapped_column(Float)
    bin_max: Mapped[float | None] = mapped_column(Float)
    bin_contains: Mapped[float | None] = mapped_column(Float)
    data_index: Mapped[int | None] = mapped_column(BigInteger)
    data_source: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # import dedup
    created_at: Mapped[datetime] = _created_at()


# --- evaluations ----------------------------------------------------------------------------


class Eval(Base):
    """One evaluation of a source (`core`, `absorption_first_letter`), as Neuronpedia's `Eval`.

    `output` is SAE-Bench's result JSON for that eval type; a rerun replaces it.
    """

    __tablename__ = "evals"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_id", "source_id"], ["sources.model_id", "sources.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("model_id", "source_id", "type_name", name="uq_evals_source_type"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(128))
    source_id: Mapped[str] = mapped_column(String(128))
    type_name: Mapped[str] = mapped_column(String(64))
    output: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


# --- explanations, embeddings, scores ------------------------------------------------------


class Explanation(Base):
    """A text saying what a feature does, and who (or what method) wrote it."""

    __tablename__ = "explanations"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_id", "source_id", "index"],
            ["features.model_id", "features.source_id", "features.index"],
            ondelete="CASCADE",
        ),
        Index("ix_explanations_feature", "model_id", "source_id", "index"),
        Index("ix_explanations_search_vector", "search_vector", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(128))
    source_id: Mapped[str] = mapped_column(String(128))
    index: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    type_name: Mapped[str] = mapped_column(String(128))  # e.g. "oai_token-act-pair", "offline"
    explanation_model_name: Mapped[str | None] = mapped_column(String(256))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # import dedup
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR, Computed("to_tsvector('english', description)", persisted=True)
    )
    created_at: Mapped[datetime] = _created_at()

    embeddings: Mapped[list["ExplanationEmbedding"]] = relationship(
        back_populates="explanation", cascade="all, delete-orphan", passive_deletes=True
    )
    scores: Mapped[list["ExplanationScore"]] = relationship(
        back_populates="explanation", cascade="all, delete-orphan", passive_deletes=True
    )
    votes: Mapped[list["ExplanationVote"]] = relationship(
        back_populates="explanation", cascade="all, delete-orphan", passive_deletes=True
    )


class EmbeddingModel(Base):
    """An embedding model whose vectors are stored, with its width (one HNSW index each)."""

    __tablename__ = "embedding_models"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    dimensions: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created_at()


class ExplanationEmbedding(Base):
    """One explanation embedded by one embedding model."""

    __tablename__ = "explanation_embeddings"

    explanation_id: Mapped[int] = mapped_column(
        ForeignKey("explanations.id", ondelete="CASCADE"), primary_key=True
    )
    embedding_model: Mapped[str] = mapped_column(
        ForeignKey("embedding_models.name", ondelete="CASCADE"), primary_key=True
    )
    embedding: Mapped[list[float]] = mapped_column(Vector())
    created_at: Mapped[datetime] = _created_at()

    explanation: Mapped[Explanation] = relationship(back_populates="embeddings")


class ExplanationScore(Base):
    """How well an explanation predicts its feature, by one scorer."""

    __tablename__ = "explanation_scores"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    explanation_id: Mapped[int] = mapped_column(
        ForeignKey("explanations.id", ondelete="CASCADE"), index=True
    )
    type_name: Mapped[str] = mapped_column(String(64))  # embedding, detection, fuzz, simulation
    value: Mapped[float] = mapped_column(Float)
    scorer_model: Mapped[str | None] = mapped_column(String(256))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    created_at: Mapped[datetime] = _created_at()

    explanation: Mapped[Explanation] = relationship(back_populates="scores")


class ExplanationVote(Base):
    """A person's vote for an explanation (Neuronpedia's `Vote`): one per voter and
    explanation; the count orders a feature's explanations."""

    __tablename__ = "explanation_votes"
    __table_args__ = (
        UniqueConstraint("voter_id", "explanation_id", name="uq_explanation_votes_voter"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    voter_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    explanation_id: Mapped[int] = mapped_column(
        ForeignKey("explanations.id", ondelete="CASCADE"), index=True
    )
    points: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = _created_at()

    explanation: Mapped[Explanation] = relationship(back_populates="votes")


# --- people, lists, caches ------------------------------------------------------------------


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    created_at: Mapped[datetime] = _created_at()


class ApiKey(Base):
    """An API key, stored only as its SHA-256; `prefix` lets people tell keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = _created_at()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class FeatureList(Base):
    """A named, shareable list of features (and optionally chosen activations)."""

    __tablename__ = "lists"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random, shareable
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Neuronpedia's `defaultTestText`: the list page runs it through every feature.
    default_test_text: Mapped[str | None] = mapped_column(Text)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = _created_at()

    items: Mapped[list["FeatureListItem"]] = relationship(
        back_populates="feature_list", cascade="all, delete-orphan", passive_deletes=True
    )


class FeatureListItem(Base):
    __tablename__ = "list_items"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_id", "source_id", "index"],
            ["features.model_id", "features.source_id", "features.index"],
            ondelete="CASCADE",
        ),
    )

    list_id: Mapped[str] = mapped_column(
        ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    activation_id: Mapped[int | None] = mapped_column(
        ForeignKey("activations.id", ondelete="SET NULL")
    )
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    added_at: Mapped[datetime] = _created_at()

    feature_list: Mapped[FeatureList] = relationship(back_populates="items")


class SteerCache(Base):
    """Steering results keyed by a hash of the normalised request (steering is slow).

    The key is also the run's share id (Neuronpedia's steer output id, `/api/steer-load`);
    `creator_id` is who first ran it with a key, so their "my stuff" page lists it."""

    __tablename__ = "steer_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSONB)
    response: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # The web API request as asked (features by key, not the raw vectors sent on), so a
    # shared link reopens the steer page as it was; null on runs saved before it was kept.
    asked: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    creator_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = _created_at()


class Comment(Base):
    """A person's comment on a feature (Neuronpedia's `Comment`); gone with the feature."""

    __tablename__ = "comments"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_id", "source_id", "index"],
            ["features.model_id", "features.source_id", "features.index"],
            ondelete="CASCADE",
        ),
        Index("ix_comments_feature", "model_id", "source_id", "index"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(128))
    source_id: Mapped[str] = mapped_column(String(128))
    index: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = _created_at()

    user: Mapped[User] = relationship(lazy="joined")


class ListComment(Base):
    """A person's comment on a list (Neuronpedia's `ListComment`); gone with the list."""

    __tablename__ = "list_comments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    list_id: Mapped[str] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = _created_at()

    user: Mapped[User] = relationship(lazy="joined")


class Bookmark(Base):
    """A feature a person keeps track of (Neuronpedia's `Bookmark`): one per person and
    feature, so adding twice is harmless."""

    __tablename__ = "bookmarks"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model_id", "source_id", "index"],
            ["features.model_id", "features.source_id", "features.index"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("user_id", "model_id", "source_id", "index", name="uq_bookmarks_feature"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(String(128))
    source_id: Mapped[str] = mapped_column(String(128))
    index: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created_at()


# --- experiment tracking -------------------------------------------------------------------


class TrainingRun(Base):
    """One SAE training run: its config, status, output and (below) metric time series."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256))
    model_id: Mapped[str] = mapped_column(String(128))
    hook_name: Mapped[str] = mapped_column(String(256))
    architecture: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(32), default="queued", server_default="queued")
    output_path: Mapped[str | None] = mapped_column(Text)
    source_id: Mapped[str | None] = mapped_column(String(128))  # registered source when done
    final_metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _created_at()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    metrics: Mapped[list["TrainingMetric"]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )


class TrainingMetric(Base):
    """Metrics of a run at one step (MSE, explained variance, L0, ... as JSON)."""

    __tablename__ = "training_metrics"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("training_runs.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    n_tokens: Mapped[int] = mapped_column(BigInteger)
    values: Mapped[dict[str, float]] = mapped_column(JSONB)
    recorded_at: Mapped[datetime] = _created_at()

    run: Mapped[TrainingRun] = relationship(back_populates="metrics")


# --- jobs ---------------------------------------------------------------------------------


class JobProgress(Base):
    """How far a queued job has come; the queue itself lives in schema `procrastinate`."""

    __tablename__ = "job_progress"

    job_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    done: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    total: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(Text, default="", server_default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


# --- attribution graphs ------------------------------------------------------------------

# Graphs keep Neuronpedia's column meanings (`GraphMetadata`: modelId, slug, promptTokens,
# prompt, titlePrefix, sourceSetName, isFeatured); the graph JSON itself (Neuronpedia's
# format, as circuit-tracer's `create_graph_files` writes it) is stored gzipped in the row
# rather than in a bucket, so a graph is stored whole or not at all, and every service that
# shares the database (the graph service in its own container) can read it.


class Graph(Base):
    """One attribution graph of a prompt: its metadata, and its JSON, gzipped."""

    __tablename__ = "graphs"
    __table_args__ = (UniqueConstraint("model_id", "slug", name="uq_graphs_model_id_slug"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random, shareable
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(128))
    source_set_name: Mapped[str | None] = mapped_column(String(128))  # the transcoder set
    prompt: Mapped[str] = mapped_column(Text)
    prompt_tokens: Mapped[list[str]] = mapped_column(TextArray, default=list, server_default="{}")
    title_prefix: Mapped[str] = mapped_column(String(256), default="", server_default="")
    is_featured: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    n_nodes: Mapped[int] = mapped_column(Integer)
    n_links: Mapped[int] = mapped_column(Integer)
    # The graph service's job that made it: a retried job finds its own graph already stored.
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    data_gzip: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class GraphSubgraph(Base):
    """A saved view of a graph: pinned nodes, labelled supernodes and thresholds."""

    __tablename__ = "graph_subgraphs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random, shareable
    graph_id: Mapped[str] = mapped_column(ForeignKey("graphs.id", ondelete="CASCADE"), index=True)
    display_name: Mapped[str | None] = mapped_column(String(256))
    pinned_ids: Mapped[list[str]] = mapped_column(TextArray, default=list, server_default="{}")
    # [[label, node_id, node_id, ...], ...] as Neuronpedia's qParams carry them.
    supernodes: Mapped[list[list[str]]] = mapped_column(JSONB, default=list, server_default="[]")
    clerps: Mapped[list[Any]] = mapped_column(JSONB, default=list, server_default="[]")
    pruning_threshold: Mapped[float | None] = mapped_column(Float)
    density_threshold: Mapped[float | None] = mapped_column(Float)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class GraphUpload(Base):
    """A graph upload in flight: issued with a signed URL, filled by the PUT, saved by id."""

    __tablename__ = "graph_uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the putRequestId
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(256))
    content_length: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    data: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)  # as PUT (gzip or not)
    created_at: Mapped[datetime] = _created_at()


# --- imports --------------------------------------------------------------------------------


class ImportJob(Base):
    """An import of one Neuronpedia-format source export; resumable file by file."""

    __tablename__ = "import_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    location: Mapped[str] = mapped_column(Text)  # folder path or http(s)/s3 URL
    model_id: Mapped[str] = mapped_column(String(128))
    source_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32), default="listed", server_default="listed")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    files: Mapped[list["ImportFile"]] = relationship(
        back_populates="import_job", cascade="all, delete-orphan", passive_deletes=True
    )


class ImportFile(Base):
    """One file of an import: listed → downloaded (size, sha256) → imported (rows)."""

    __tablename__ = "import_files"

    import_id: Mapped[int] = mapped_column(
        ForeignKey("import_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(Text, primary_key=True)  # relative to the location
    kind: Mapped[str] = mapped_column(String(32))  # config, features, activations, explanations
    state: Mapped[str] = mapped_column(String(32), default="listed", server_default="listed")
    listed_size: Mapped[int | None] = mapped_column(BigInteger)  # what the listing said
    etag: Mapped[str | None] = mapped_column(String(128))  # S3's, as listed
    size: Mapped[int | None] = mapped_column(BigInteger)  # what was downloaded
    sha256: Mapped[str | None] = mapped_column(String(64))
    rows_imported: Mapped[int | None] = mapped_column(Integer)
    # Rows not inserted because their ids are already used under another model or source.
    rows_skipped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    import_job: Mapped[ImportJob] = relationship(back_populates="files")
