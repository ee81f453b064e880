"""Wire models of Neuronpedia's graph API (`/api/graph/*`, `/api/steer-logits`) and ours.

Field names are Neuronpedia's (camelCase on its webapp routes; the graph server's
snake_case where Neuronpedia forwards those answers as they are), so the `neuronpedia`
client's graph calls work unchanged. Ranges are Neuronpedia's documented ones, except
`maxFeatureNodes`, whose limit is the graph service's (attribution on a CPU is slow).
"""

from datetime import datetime
from typing import Any

from pydantic import Field

from interpedia_webapi.schemas import Schema


class GraphChatMessage(Schema):
    role: str = Field(max_length=32)
    content: str = Field(max_length=10_000)


class GraphPromptFields(Schema):
    prompt: str = Field(default="", max_length=10_000)
    messages: list[GraphChatMessage] | None = Field(default=None, max_length=64)
    modelId: str = Field(max_length=128)
    sourceSetName: str | None = Field(
        default=None, max_length=128, description="The transcoder set (default: the service's)."
    )


class GraphGenerateRequest(GraphPromptFields):
    slug: str | None = Field(
        default=None, max_length=128, description="Default: made from the prompt and the time."
    )
    maxNLogits: int = Field(default=10, ge=5, le=15)
    desiredLogitProb: float = Field(default=0.95, ge=0.6, le=0.99)
    nodeThreshold: float = Field(default=0.8, ge=0.5, le=1.0)
    edgeThreshold: float = Field(default=0.98, ge=0.8, le=1.0)
    maxFeatureNodes: int | None = Field(default=None, ge=1, le=100_000)


class GraphGenerateResponse(Schema):
    message: str
    s3url: str = Field(description="Where the graph JSON is (here, not in a bucket).")
    url: str = Field(description="The graph's page.")
    numNodes: int
    numLinks: int


class GraphJobInfo(Schema):
    """A graph being made (ours: the page follows it)."""

    jobId: int
    status: str
    modelId: str
    slug: str
    done: int | None = None
    total: int | None = None
    message: str = ""
    url: str | None = Field(default=None, description="The graph's page, once it is made.")


class TranscoderLayerMetrics(Schema):
    """One layer's transcoder at the run's latest step (absent values not recorded yet)."""

    layer: int
    fvu: float | None = Field(default=None, description="MLP-output variance unexplained.")
    l0: float | None = None
    deadFraction: float | None = None


class TranscoderTrainingInfo(Schema):
    """A transcoder set being trained, or trained and getting its layers' dashboards (ours:
    the graph page follows it, e.g. the demo's set)."""

    name: str
    status: str = Field(description="The run's: queued, running or succeeded.")
    nTokens: int
    totalTokens: int
    fvu: float | None = Field(default=None, description="Mean over the layers.")
    l0: float | None = None
    deadFraction: float | None = None
    layers: list[TranscoderLayerMetrics]
    layersWithDashboards: int
    layerCount: int = Field(description="Layers registered as sources (0 until trained).")


class GraphUser(Schema):
    id: int
    name: str


class GraphMetadata(Schema):
    """Neuronpedia's `GraphMetadata` row; `url` is where the graph JSON is."""

    id: str
    modelId: str
    sourceSetName: str | None
    slug: str
    promptTokens: list[str]
    prompt: str
    titlePrefix: str
    isFeatured: bool
    url: str
    userId: int | None
    user: GraphUser | None
    numNodes: int
    numLinks: int
    createdAt: datetime
    updatedAt: datetime


class GraphKey(Schema):
    modelId: str = Field(max_length=128)
    slug: str = Field(max_length=128)


class MessageResponse(Schema):
    message: str


class SignedPutRequest(Schema):
    filename: str = Field(min_length=6, max_length=256)
    contentLength: int = Field(ge=1, description="Bytes of the (gzipped) file to be PUT.")
    contentType: str = Field(default="application/json", max_length=128)


class SignedPutResponse(Schema):
    url: str = Field(description="PUT the file here (gzip with Content-Encoding: gzip, or not).")
    key: str
    putRequestId: str


class SaveToDbRequest(Schema):
    putRequestId: str = Field(max_length=64)


class SaveToDbResponse(Schema):
    message: str
    url: str


class SubgraphSaveRequest(GraphKey):
    displayName: str | None = Field(default=None, max_length=256)
    pinnedIds: list[str] = Field(max_length=5000)
    supernodes: list[list[str]] = Field(
        max_length=1000, description="Each [label, node_id, node_id, ...]."
    )
    clerps: list[Any] = Field(default_factory=list, max_length=5000)
    pruningThreshold: float | None = Field(default=None, ge=0, le=1)
    densityThreshold: float | None = Field(default=None, ge=0, le=1)
    overwriteId: str | None = Field(default=None, max_length=64)


class SubgraphSaveResponse(Schema):
    success: bool
    subgraphId: str


class Subgraph(Schema):
    id: str
    displayName: str | None
    graphMetadataId: str
    modelId: str
    slug: str
    pinnedIds: list[str]
    supernodes: list[list[str]]
    clerps: list[Any]
    pruningThreshold: float | None
    densityThreshold: float | None
    userId: int
    user: GraphUser | None
    createdAt: datetime
    updatedAt: datetime


class SubgraphListResponse(Schema):
    success: bool
    subgraphs: list[Subgraph]


class SubgraphDeleteRequest(Schema):
    subgraphId: str = Field(max_length=64)


class SubgraphDeleteResponse(Schema):
    success: bool
    message: str


class GraphTokenizeRequest(GraphPromptFields):
    maxNLogits: int = Field(default=10, ge=5, le=15)
    desiredLogitProb: float = Field(default=0.95, ge=0.6, le=0.99)


class SalientLogit(Schema):
    token: str
    token_id: int
    probability: float


class GraphTokenizeResponse(Schema):
    prompt: str
    input_tokens: list[str]
    salient_logits: list[SalientLogit]
    total_salient_tokens: int
    cumulative_probability: float


class GraphParseChatPromptRequest(Schema):
    prompt: str = Field(min_length=1, max_length=10_000)
    modelId: str = Field(max_length=128)
    sourceSetName: str | None = Field(default=None, max_length=128)


class GraphParseChatPromptResponse(Schema):
    messages: list[GraphChatMessage] | None
    is_chat: bool
    prompt: str
    unsteerable_positions: list[int]


class SteerLogitsFeature(Schema):
    """Neuronpedia forwards these to its graph server as they are (snake_case)."""

    layer: int = Field(ge=0)
    index: int = Field(ge=0)
    token_active_position: int = Field(ge=0)
    steer_position: int | None = Field(default=None, ge=0)
    steer_generated_tokens: bool = False
    delta: float | None = Field(default=None, ge=-100_000, le=100_000)
    ablate: bool = False


class SteerLogitsRequest(Schema):
    modelId: str = Field(max_length=128)
    sourceSetName: str | None = Field(default=None, max_length=128)
    prompt: str = Field(min_length=1, max_length=10_000)
    features: list[SteerLogitsFeature] = Field(min_length=1, max_length=64)
    nTokens: int = Field(default=10, ge=1, le=64)
    topK: int = Field(default=5, ge=1, le=20)
    freezeAttention: bool = False
    temperature: float = Field(default=0.0, ge=0, le=2)
    freqPenalty: float = Field(default=0.0, ge=-2, le=2)
    seed: int | None = None


class TopLogit(Schema):
    token: str
    prob: float


class LogitsByToken(Schema):
    token: str
    top_logits: list[TopLogit]


class SteerLogitsResponse(Schema):
    DEFAULT_GENERATION: str
    STEERED_GENERATION: str
    DEFAULT_LOGITS_BY_TOKEN: list[LogitsByToken]
    STEERED_LOGITS_BY_TOKEN: list[LogitsByToken]
