"""Wire models of the web API: the source of truth for `schemas/webapi.json`.

Public `/api` paths that Neuronpedia also has use Neuronpedia's field names
(`modelId`, `layer` for the source id, `customText`), so its `neuronpedia`
client works against Interpedia unchanged. Every limit the API enforces is declared here
(lengths, counts, ranges); `max_text_chars` and `steer_max_tokens` in settings may only
tighten the inference ones, answering 400.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from interpedia_core.errors import InvalidInput
from interpedia_core.wire import (
    INT32_MAX,
    INT64_MAX,
    BigRowId,
    FeatureIndex,
    NonBlankText,
    Offset,
    Seed,
)

MAX_TEXT_CHARS = 4000  # longest text sent to inference
MAX_TEXTS = 32  # texts in one activation request
STEER_MAX_TOKENS = 256  # tokens one steering request may generate (the inference cap)

# Neuronpedia sends indices and ids as decimal strings as often as numbers.
Index = FeatureIndex | Annotated[str, StringConstraints(pattern=r"^[0-9]{1,10}$")]
ExplanationId = BigRowId | Annotated[str, StringConstraints(pattern=r"^[0-9]{1,19}$")]
Text = Annotated[NonBlankText, StringConstraints(max_length=MAX_TEXT_CHARS)]
Texts = Text | Annotated[list[Text], Field(min_length=1, max_length=MAX_TEXTS)]


class Schema(BaseModel):
    # Unknown fields are ignored (Neuronpedia clients send more than we use).
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def parse_index(value: int | str) -> int:
    """A feature index from a number or its decimal string (also a URL's path segment)."""
    return _parse_int(value, 0, INT32_MAX, "a feature index")


def parse_explanation_id(value: int | str) -> int:
    return _parse_int(value, 1, INT64_MAX, "an explanation id")


def _parse_int(value: int | str, low: int, high: int, what: str) -> int:
    text = str(value)
    if (
        not isinstance(value, bool)
        and text.isascii()
        and text.isdigit()
        and low <= int(text) <= high
    ):
        return int(text)
    raise InvalidInput(f"{what} is an integer from {low} to {high}, not {value!r}")


class FeatureKey(Schema):
    modelId: str = Field(max_length=128)
    layer: str = Field(max_length=128, description="The source id, e.g. 6-res-jb.")
    index: Index


# --- models ---------------------------------------------------------------------------------


class SourceInfo(Schema):
    id: str
    setName: str
    hookName: str
    layer: int
    architecture: str
    d_sae: int
    features: int
    explanations: int
    inferenceEnabled: bool


class ModelInfo(Schema):
    id: str
    displayName: str
    layers: int
    dimension: int
    instruct: bool
    sourceSets: list[str]
    sources: list[SourceInfo]


# --- activations ----------------------------------------------------------------------------


class ActivationNewRequest(Schema):
    feature: FeatureKey
    customText: Texts = Field(description=f"One text or several (at most {MAX_TEXTS}).")


class ActivationNewResponse(Schema):
    tokens: list[str]
    values: list[float]
    maxValue: float
    maxValueTokenIndex: int
    minValue: float


class ActivationSourceRequest(Schema):
    modelId: str = Field(max_length=128)
    source: str = Field(max_length=128)
    customText: Texts = Field(description=f"One text or several (at most {MAX_TEXTS}).")


class ActivationSourceResult(Schema):
    tokens: list[str]
    activeFeatures: dict[str, list[list[float]]] = Field(
        description="Per active feature index, its [token index, value] pairs."
    )


class ActivationSourceResponse(Schema):
    results: list[ActivationSourceResult]


# --- explanations ---------------------------------------------------------------------------


class ExplanationSearchRequest(Schema):
    query: Annotated[NonBlankText, StringConstraints(max_length=1000)]
    modelId: str | None = Field(default=None, max_length=128)
    layers: list[str] | None = Field(default=None, max_length=200)
    releaseName: str | None = Field(default=None, max_length=256)
    offset: Offset = 0
    limit: int = Field(default=20, ge=1, le=100)
    mode: Literal["keyword", "semantic", "hybrid"] = "hybrid"


class ExplanationSearchResponse(Schema):
    request: dict[str, Any]
    results: list[dict[str, Any]]
    resultsCount: int
    hasMore: bool
    nextOffset: int = Field(description="The offset of the next page (when hasMore).")


class ExplanationGenerateRequest(FeatureKey):
    explanationType: str | None = Field(
        default=None,
        max_length=128,
        description="Explainer: offline or interpedia-offline-v2 (no LLM); llm, "
        "interpedia-llm-v1 or one of Neuronpedia's LLM types (oai_token-act-pair, "
        "eleuther_acts_top20, np_max-act-logits, np_max-act; 400 without an LLM); auto or "
        "none: the LLM when autointerp has one, else offline. The stored explanation "
        "carries the type and model that really wrote it.",
    )
    explanationModelName: str | None = Field(
        default=None,
        max_length=256,
        description="Accepted for Neuronpedia's clients; the LLM is autointerp's own.",
    )


class ExplanationScoreRequest(Schema):
    explanationId: ExplanationId
    scorerModel: str | None = Field(default=None, max_length=256)
    scorerType: str = Field(
        default="embedding",
        max_length=64,
        description="embedding (eleuther_embedding), fuzz (eleuther_fuzz), detection "
        "(eleuther_recall) or simulation; the LLM ones need an LLM in autointerp (400 "
        "without); recall_alt is not available (400).",
    )


class ExplanationNewFeature(FeatureKey):
    explanation: Annotated[NonBlankText, StringConstraints(max_length=2000)]
    explanationModel: str | None = Field(
        default=None, max_length=256, description="What wrote it, if not the author alone."
    )


class ExplanationNewRequest(Schema):
    """Neuronpedia's body: the explanation inside `feature`."""

    feature: ExplanationNewFeature


class ExplanationExportQuery(Schema):
    modelId: str = Field(max_length=128)
    layer: str = Field(max_length=128, description="The source id, e.g. 6-res-jb.")
    limit: int = Field(default=1000, ge=1, le=10000)
    offset: Offset = 0


# --- inference search, steering, tokenize -----------------------------------------------------


class SearchAllRequest(Schema):
    modelId: str = Field(max_length=128)
    sourceSet: str = Field(max_length=128)
    text: Text
    selectedLayers: list[str] = Field(default_factory=list, max_length=200)
    sortIndexes: list[int] = Field(default_factory=list, max_length=4096)
    ignoreBos: bool = True
    numResults: int = Field(default=25, ge=1, le=100)


class SearchAllResult(Schema):
    modelId: str
    layer: str
    index: str
    values: list[float]
    maxValue: float
    maxValueTokenIndex: int
    sumValues: float | None


class SearchAllResponse(Schema):
    result: list[SearchAllResult]
    tokens: list[str]
    counts: list[list[float]] | None


class SearchTopkByTokenRequest(Schema):
    modelId: str = Field(max_length=128)
    source: str = Field(max_length=128)
    text: Texts = Field(
        description=f"One text, or several (at most {MAX_TEXTS}; then no feature details)."
    )
    numResults: int = Field(default=5, ge=1, le=100)
    ignoreBos: bool = Field(
        default=True, description="Leave out special tokens (BOS, EOS, chat markers)."
    )
    densityThreshold: float = Field(
        default=0.01,
        ge=0,
        lt=1,
        description="Keep only features firing on at most this fraction of tokens; 0: keep all.",
    )


class TopkFeatureInfo(Schema):
    modelId: str
    layer: str
    index: str
    frac_nonzero: float | None
    maxActApprox: float | None
    description: str | None = Field(description="The feature's first explanation, if any.")


class TopkFeature(Schema):
    featureIndex: int
    activationValue: float
    specificity: float | None = Field(
        default=None,
        description="What the features of one token are ranked by: the activation as a share "
        "of the feature's max activation, times log10(1 / density). None in a batch answer.",
    )
    feature: TopkFeatureInfo | None = None


class TopkTokenResult(Schema):
    position: int
    token: str
    isSpecial: bool
    topFeatures: list[TopkFeature]


class SearchTopkByTokenResponse(Schema):
    """Neuronpedia's shape (its `neuronpedia` client reads `position` and `topFeatures`)."""

    source: str
    results: list[TopkTokenResult]


class SearchTopkByTokenBatchResponse(Schema):
    results: list[SearchTopkByTokenResponse]


class SteerFeature(Schema):
    modelId: str = Field(max_length=128)
    layer: str = Field(max_length=128)
    index: Index
    strength: float = Field(ge=-10_000, le=10_000)


class SteerRequest(Schema):
    modelId: str = Field(max_length=128)
    prompt: Text
    features: list[SteerFeature] = Field(min_length=1, max_length=32)
    temperature: float = Field(default=0.5, ge=0, le=2)
    n_tokens: int = Field(default=32, ge=1, le=STEER_MAX_TOKENS)
    freq_penalty: float = Field(default=2, ge=-2, le=2)
    seed: Seed = 16
    strength_multiplier: float = Field(default=4, ge=-1000, le=1000)
    steer_method: Literal["SIMPLE_ADDITIVE", "ORTHOGONAL_DECOMP", "PROJECTION_CAP"] = (
        "SIMPLE_ADDITIVE"
    )
    normalize_steering: bool = False
    stream: bool = False


class ChatMessage(Schema):
    role: Literal["system", "user", "assistant"]
    content: Text


class SteerChatRequest(Schema):
    modelId: str = Field(max_length=128)
    features: list[SteerFeature] = Field(min_length=1, max_length=32)
    defaultChatMessages: list[ChatMessage] = Field(min_length=1, max_length=64)
    steeredChatMessages: list[ChatMessage] = Field(min_length=1, max_length=64)
    temperature: float = Field(default=0.5, ge=0, le=2)
    n_tokens: int = Field(default=32, ge=1, le=STEER_MAX_TOKENS)
    freq_penalty: float = Field(default=2, ge=-2, le=2)
    seed: Seed = 16
    strength_multiplier: float = Field(default=4, ge=-1000, le=1000)
    steer_special_tokens: bool = True
    stream: bool = False


class SteerResponse(Schema):
    DEFAULT: str | None = None
    STEERED: str | None = None
    id: str
    cached: bool


class SteerStreamEvent(Schema):
    """One server-sent event of a streamed steer: the texts so far; the last has `done`."""

    DEFAULT: str | None = None
    STEERED: str | None = None
    done: bool = False
    id: str | None = None
    cached: bool | None = None
    error: str | None = None


class TokenizeRequest(Schema):
    model: str = Field(max_length=128)
    text: Text
    prepend_bos: bool = False


class TokenizeResponse(Schema):
    tokens: list[int]
    token_strings: list[str]
    prepend_bos: bool


# --- lists ----------------------------------------------------------------------------------


class ListNewRequest(Schema):
    name: str = Field(min_length=1, max_length=256)
    description: str = Field(default="", max_length=10_000)


class ListFeatureToAdd(FeatureKey):
    description: str = Field(default="", max_length=2000)


class ListAddFeaturesRequest(Schema):
    listId: str = Field(max_length=64)
    featuresToAdd: list[ListFeatureToAdd] = Field(min_length=1, max_length=500)


class ListIdRequest(Schema):
    listId: str = Field(max_length=64)


class ListRemoveRequest(FeatureKey):
    listId: str = Field(max_length=64)


class ListInfo(Schema):
    id: str
    name: str
    description: str
    url: str


class ListItemInfo(Schema):
    modelId: str
    layer: str
    index: str
    description: str


class ListGetResponse(ListInfo):
    neurons: list[ListItemInfo]


# --- users ----------------------------------------------------------------------------------


class UserCreateRequest(Schema):
    name: str = Field(min_length=1, max_length=128)
    isAdmin: bool = False


class UserInfo(Schema):
    id: int
    name: str
    isAdmin: bool


class UserCreateResponse(UserInfo):
    apiKey: str = Field(description="Shown once; only its SHA-256 is stored.")


class KeyInfo(Schema):
    id: int
    prefix: str
    revoked: bool


class KeyCreateResponse(KeyInfo):
    apiKey: str


# --- import ---------------------------------------------------------------------------------


class ImportStartRequest(Schema):
    location: str = Field(min_length=1, max_length=2000)


class ImportInfo(Schema):
    id: int
    location: str
    modelId: str
    sourceId: str
    status: str
    error: str | None
    filesTotal: int
    filesDone: int
    filesFailed: int
    rows: int
    rowsSkipped: int = Field(
        default=0, description="Rows not stored: their ids belong to another model or source."
    )
    current: str | None


class ImportFileInfo(Schema):
    path: str
    kind: str
    state: str
    size: int | None
    sha256: str | None
    rows: int | None
    rowsSkipped: int = 0
    error: str | None


class ImportDetail(ImportInfo):
    files: list[ImportFileInfo]


class VerifyResponse(Schema):
    importId: int
    ok: bool
    differences: list[str]
    counts: dict[str, dict[str, int]]


class AvailableSource(Schema):
    modelId: str
    sourceId: str
    location: str


# --- feature maps and evaluations -----------------------------------------------------------


class UmapRequest(Schema):
    modelId: str = Field(max_length=128)
    layers: list[str] = Field(min_length=1, max_length=50, description="Source ids, e.g. 6-res-jb.")


class UmapPointsResponse(Schema):
    """A source's feature map, one array per field and one entry per feature (index order)."""

    modelId: str
    source: str
    count: int
    index: list[int]
    x: list[float]
    y: list[float]
    cluster: list[int] = Field(description="HDBSCAN cluster of the layout; -1: in none.")
    logDensity: list[float | None] = Field(description="log10 of density; null: never fired.")
    description: list[str | None] = Field(description="The feature's explanation, if any.")


class UmapExplanationsResponse(Schema):
    """A mapped source's explanations, one per explained feature (index order): the text the
    source page's map shows once its packed coordinates are drawn."""

    modelId: str
    source: str
    index: list[int]
    description: list[str] = Field(description="The feature's alphabetically first explanation.")


class SourceEvalsResponse(Schema):
    """A source's evaluations: SAE-Bench outputs by type (`core`, `absorption_first_letter`)."""

    modelId: str
    source: str
    evals: dict[str, dict[str, Any]]


class EvalsSourceRow(Schema):
    source: str
    setName: str
    layer: int
    hookName: str
    architecture: str
    d_sae: int
    metrics: dict[str, float] = Field(description="`type||category||metric` → value.")


class ModelEvalsResponse(Schema):
    """Every source of a model with its evaluation metrics, for comparing them."""

    modelId: str
    sources: list[EvalsSourceRow]
