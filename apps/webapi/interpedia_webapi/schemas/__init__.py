"""Wire models of the web API: the source of truth for `schemas/webapi.json`.

Public `/api` paths that Neuronpedia also has use Neuronpedia's field names
(`modelId`, `layer` for the source id, `customText`), so its `neuronpedia`
client works against Interpedia unchanged. Every limit the API enforces is declared here
(lengths, counts, ranges); `max_text_chars` and `steer_max_tokens` in settings may only
tighten the inference ones, answering 400.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

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
from interpedia_webapi.uploads import MAX_TOKENS as MAX_TOKENS_PER_ACTIVATION
from interpedia_webapi.uploads import MAX_UPLOAD_ACTIVATIONS, MAX_UPLOAD_BYTES

MAX_TEXT_CHARS = 4000  # longest text sent to inference
MAX_TEXTS = 32  # texts in one activation request
STEER_MAX_TOKENS = 256  # tokens one steering request may generate (the inference cap)

# Neuronpedia sends indices and ids as decimal strings as often as numbers.
Index = FeatureIndex | Annotated[str, StringConstraints(pattern=r"^[0-9]{1,10}$")]
ExplanationId = BigRowId | Annotated[str, StringConstraints(pattern=r"^[0-9]{1,19}$")]
Text = Annotated[NonBlankText, StringConstraints(max_length=MAX_TEXT_CHARS)]
Texts = Text | Annotated[list[Text], Field(min_length=1, max_length=MAX_TEXTS)]
# Neuronpedia's `Visibility` enum, as it writes it (lower case is accepted too).
WireVisibility = Annotated[
    Literal["PUBLIC", "UNLISTED", "PRIVATE"],
    BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v),
]


def visibility_of(wire: str) -> Literal["public", "unlisted", "private"]:
    """The stored name of a wire visibility."""
    return {"PUBLIC": "public", "UNLISTED": "unlisted", "PRIVATE": "private"}[wire]


class Schema(BaseModel):
    # Unknown fields are ignored (Neuronpedia clients send more than we use).
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def parse_index(value: int | str) -> int:
    """A feature index from a number or its decimal string (also a URL's path segment)."""
    return _parse_int(value, 0, INT32_MAX, "a feature index")


def parse_explanation_id(value: int | str) -> int:
    return _parse_int(value, 1, INT64_MAX, "an explanation id")


def parse_comment_id(value: int | str) -> int:
    return _parse_int(value, 1, INT64_MAX, "a comment id")


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


class SourceFields(Schema):
    """What every answer about a source says of it."""

    id: str
    setName: str
    hookName: str
    layer: int
    architecture: str
    d_sae: int


class SourceInfo(SourceFields):
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
    dfaValues: list[float] | None = Field(
        default=None,
        description="Attention-output (hook_z) features only: how much each token feeds the "
        "feature at dfaTargetIndex through attention (direct feature attribution)",
    )
    dfaMaxValue: float | None = None
    dfaTargetIndex: int | None = Field(default=None, description="The max-activating token")


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


class ActivationRawRequest(Schema):
    """Raw hook activations of every token of `prompt` at `layers`, no SAE involved."""

    modelId: str = Field(max_length=128)
    prompt: Text
    layers: list[Annotated[int, Field(ge=0, le=1023)]] = Field(min_length=1, max_length=64)
    hookPoint: str = Field(
        default="residual_stream",
        max_length=128,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$",
        description="`residual_stream` or a hook inside a block, e.g. `mlp.hook_post`",
    )
    format: Literal["json", "npy"] = Field(
        default="json",
        description="`npy`: one float32 array [layers, tokens, d_hook] as a NumPy .npy file",
    )


class ActivationRawResponse(Schema):
    modelId: str
    hookPoint: str
    layers: list[int]
    tokens: list[str]
    tokenIds: list[int]
    shape: list[int] = Field(description="[layers, tokens, d_hook]")
    values: list[list[list[float]]] = Field(description="[layers, tokens, d_hook]")


class ActivationAttentionRequest(Schema):
    """One layer/head's attention pattern over a text (an attention SAE's feature page)."""

    modelId: str = Field(max_length=128)
    prompt: Text
    layer: int = Field(ge=0, le=1023)
    head: int = Field(ge=0, le=1023)


class ActivationAttentionResponse(Schema):
    """Sparse, as Neuronpedia returns it: per query row its strongest keys, each entry at
    flat index `query * seqLen + key`."""

    tokens: list[str]
    seqLen: int
    attentionIndices: list[int]
    attentionValues: list[float]
    maxActivation: float = Field(description="Largest weight outside row 0 and column 0 (BOS)")


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
    visibility: WireVisibility = Field(
        default="PUBLIC", description="PRIVATE: shown to you (and admins) only."
    )


class ExplanationNewRequest(Schema):
    """Neuronpedia's body: the explanation inside `feature`."""

    feature: ExplanationNewFeature


class ExplanationExportQuery(Schema):
    modelId: str = Field(max_length=128)
    layer: str = Field(max_length=128, description="The source id, e.g. 6-res-jb.")
    limit: int = Field(default=1000, ge=1, le=10000)
    offset: Offset = 0


class AdminExportFeaturesRequest(Schema):
    modelId: str = Field(max_length=128)
    sourceId: str = Field(max_length=128)
    beginIndex: FeatureIndex
    endIndex: FeatureIndex = Field(description="Included, as on Neuronpedia")


class AdminExportExplanationsRequest(Schema):
    modelId: str = Field(max_length=128)
    sourceId: str = Field(max_length=128)
    maxResults: int | None = Field(default=None, ge=1, le=INT32_MAX, description="All if absent")


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


SteerMethod = Literal["SIMPLE_ADDITIVE", "ORTHOGONAL_DECOMP", "PROJECTION_CAP"]
NLogprobs = Annotated[
    int, Field(ge=0, le=10, description="Alternatives listed per generated token; 0: none")
]


class SteerRequest(Schema):
    modelId: str = Field(max_length=128)
    prompt: Text
    features: list[SteerFeature] = Field(min_length=1, max_length=32)
    temperature: float = Field(default=0.5, ge=0, le=2)
    n_tokens: int = Field(default=32, ge=1, le=STEER_MAX_TOKENS)
    freq_penalty: float = Field(default=2, ge=-2, le=2)
    seed: Seed = 16
    strength_multiplier: float = Field(default=4, ge=-1000, le=1000)
    steer_method: SteerMethod = "SIMPLE_ADDITIVE"
    normalize_steering: bool = False
    n_logprobs: NLogprobs = 0
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
    steer_method: SteerMethod = "SIMPLE_ADDITIVE"
    n_logprobs: NLogprobs = 0
    stream: bool = False


class SteerLogprobTop(Schema):
    token: str
    logprob: float


class SteerLogprob(Schema):
    """A generated token, its log-probability and the likeliest alternatives."""

    token: str
    logprob: float
    top_logprobs: list[SteerLogprobTop]


SteerLogprobs = Annotated[
    dict[str, list[SteerLogprob]] | None,
    Field(description="Per output type (STEERED, DEFAULT), with `n_logprobs` > 0"),
]


class SteerResponse(Schema):
    DEFAULT: str | None = None
    STEERED: str | None = None
    logprobs: SteerLogprobs = None
    id: str
    cached: bool


class SteerStreamEvent(Schema):
    """One server-sent event of a streamed steer: the texts so far; the last has `done`."""

    DEFAULT: str | None = None
    STEERED: str | None = None
    logprobs: SteerLogprobs = None
    done: bool = False
    id: str | None = None
    cached: bool | None = None
    error: str | None = None


class SteerLoadRequest(Schema):
    steerOutputId: str = Field(min_length=1, max_length=64, description="A steer's `id`")


class SteerLoadResponse(Schema):
    """A saved steering run (Neuronpedia's `steer-load`): its texts, and the request as
    asked, so a page can show the run and steer again from it."""

    id: str
    shareUrl: str
    kind: Literal["completion", "chat"]
    modelId: str
    inputText: str | None = Field(description="The prompt, or the chat's last user message")
    request: SteerRequest | SteerChatRequest | None = Field(
        description="The request as asked; null for runs saved before requests were kept"
    )
    DEFAULT: str | None = None
    STEERED: str | None = None
    logprobs: SteerLogprobs = None
    createdAt: str


class SteerPresetsRequest(Schema):
    modelId: str = Field(max_length=128)


class SteerPresetFeature(Schema):
    modelId: str
    layer: str
    index: int
    explanation: str
    strength: float
    hasVector: bool = False


class SteerFeaturePreset(Schema):
    name: str
    features: list[SteerPresetFeature]
    isUserVector: bool = False
    exampleSteerOutputId: str | None = None


class SteerPresetsResponse(Schema):
    """Neuronpedia's steer presets: with a key, the caller's vectors for the model (first)
    and the runs they saved on it, each loadable by `exampleSteerOutputId`."""

    modelId: str
    defaultPrompt: str
    promptPresets: list[str]
    featurePresets: list[SteerFeaturePreset]
    defaultSelectedFeatures: list[SteerPresetFeature]


# --- lens -----------------------------------------------------------------------------------

LensType = Literal["LOGIT_LENS", "JACOBIAN_LENS"]
LensLayer = Annotated[int, Field(ge=0, le=1023)]


class LensSteerToken(Schema):
    """A read-out to steer on: the exact decoded token (whitespace kept, e.g. " cat")."""

    token: str = Field(min_length=1, max_length=256)
    type: LensType = "LOGIT_LENS"


class LensPromptRequest(Schema):
    """Neuronpedia's `/api/lens/prompt` body (its webapp's names); exactly one of `prompt`
    or `chat`. The answer is always streamed."""

    modelId: str = Field(max_length=128)
    prompt: Text | None = None
    chat: list[ChatMessage] | None = Field(default=None, min_length=1, max_length=64)
    type: list[LensType] = Field(default_factory=lambda: ["LOGIT_LENS"], min_length=1, max_length=2)
    topN: int = Field(default=5, ge=1, le=20)
    layers: list[LensLayer] = Field(
        default_factory=list, max_length=1024, description="Layers to read; empty: all"
    )
    temperature: float = Field(default=0, ge=0, le=2)
    numCompletionTokens: int = Field(default=0, ge=0, le=STEER_MAX_TOKENS)
    prependBos: bool = True
    seed: Seed = 0
    filterNonWordTokens: bool = Field(
        default=True,
        description="Rank only word-like tokens (each position's own prediction always stays)",
    )
    steerTokens: list[LensSteerToken] = Field(default_factory=list, max_length=16)
    steerLayers: list[LensLayer] = Field(
        default_factory=list, max_length=1024, description="Empty: the read-out layers"
    )
    steerStrength: float = Field(default=0, ge=-50, le=50)
    steerAblate: bool = False
    swapToken: LensSteerToken | None = None
    steerGeneratedTokens: bool = False


class LensFrame(Schema):
    """One NDJSON line of a streamed lens: the inference service's frame as it sent it, told
    apart by `kind` (`meta`, `prompt`, `token`, `done`, `error`; the other fields as in the
    inference spec's LensMetaMessage, LensPromptTokensMessage, LensTokenMessage,
    LensDoneMessage and LensErrorMessage)."""

    model_config = ConfigDict(extra="allow")
    kind: Literal["meta", "prompt", "token", "done", "error"]


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
    visibility: WireVisibility = Field(
        default="PUBLIC", description="UNLISTED: only who has the link; PRIVATE: only you."
    )


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
    defaultTestText: str | None = None
    visibility: WireVisibility = "PUBLIC"


class ListItemInfo(Schema):
    modelId: str
    layer: str
    index: str
    description: str


class CommentAuthor(Schema):
    name: str


class ListCommentInfo(Schema):
    id: str
    listId: str
    text: str
    user: CommentAuthor
    createdAt: str


class ListGetResponse(ListInfo):
    neurons: list[ListItemInfo]
    comments: list[ListCommentInfo]


class ListUpdateRequest(Schema):
    listId: str = Field(max_length=64)
    name: str = Field(min_length=1, max_length=256)
    description: str = Field(default="", max_length=10_000)
    defaultTestText: str | None = Field(
        default=None, max_length=MAX_TEXT_CHARS, description="Left as it is when absent"
    )
    visibility: WireVisibility | None = Field(
        default=None, description="Left as it is when absent (not in Neuronpedia's request)"
    )


class ListEditFeatureRequest(FeatureKey):
    listId: str = Field(max_length=64)
    description: str = Field(max_length=2000)


class ListNewWithFeaturesRequest(Schema):
    name: str = Field(min_length=1, max_length=256)
    description: str = Field(default="", max_length=10_000)
    testText: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT_CHARS)
    features: list[ListFeatureToAdd] = Field(default_factory=list, max_length=500)


# --- comments and bookmarks -----------------------------------------------------------------

CommentId = ExplanationId  # the same shape: a row id, as a number or its decimal string


class CommentNewRequest(FeatureKey):
    text: str = Field(
        min_length=1, max_length=1024, description="5 to 1,024 characters once trimmed"
    )


class CommentDeleteRequest(Schema):
    id: CommentId


class CommentInfo(Schema):
    id: str
    modelId: str
    layer: str
    index: str
    text: str
    user: CommentAuthor
    createdAt: str


class ListCommentNewRequest(Schema):
    listId: str = Field(max_length=64)
    text: str = Field(
        min_length=1, max_length=1024, description="2 to 1,024 characters once trimmed"
    )


class ListCommentDeleteRequest(Schema):
    commentId: CommentId


class BookmarkInfo(Schema):
    id: str
    modelId: str
    layer: str
    index: str
    createdAt: str


# --- users ----------------------------------------------------------------------------------


class UserCreateRequest(Schema):
    name: str = Field(min_length=1, max_length=128)
    isAdmin: bool = False


class UserInfo(Schema):
    id: int
    name: str
    isAdmin: bool
    displayName: str = ""
    disabled: bool = False
    canSignIn: bool = Field(default=False, description="The user has a password.")


class SignRequest(Schema):
    """Sign up or sign in with a name and password."""

    name: str = Field(min_length=1, max_length=128)
    password: str = Field(max_length=1024)


class ProfileRequest(Schema):
    displayName: str = Field(max_length=128)


class PasswordRequest(Schema):
    currentPassword: str = Field(default="", max_length=1024)
    newPassword: str = Field(max_length=1024)


class UserManageRequest(Schema):
    """What an admin changes about a user; fields left out stay as they are."""

    isAdmin: bool | None = None
    disabled: bool | None = Field(
        default=None, description="A disabled user's keys and sessions stop working."
    )


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


# --- custom steering vectors (Neuronpedia's /api/vector/*) --------------------------------

MAX_VECTOR_LENGTH = 24_576  # Neuronpedia's limit; the model's dimension decides the rest


class VectorNewRequest(Schema):
    modelId: str = Field(max_length=128)
    layerNumber: int = Field(ge=0, le=1000)
    hookType: Literal["hook_resid_pre", "hook_resid_post"]
    vector: list[float] = Field(min_length=1, max_length=MAX_VECTOR_LENGTH)
    vectorDefaultSteerStrength: float = Field(default=10, ge=-100, le=100)
    vectorLabel: str = Field(min_length=1, max_length=256)
    visibility: WireVisibility = Field(
        default="UNLISTED", description="As on Neuronpedia, anyone with its key may read it."
    )


class VectorKey(Schema):
    modelId: str = Field(max_length=128)
    source: str = Field(max_length=128)
    index: Index


class VectorCreated(Schema):
    modelId: str
    source: str
    index: str
    label: str
    createdAt: str
    defaultSteerStrength: float
    hookName: str
    values: list[float]


class VectorNewResponse(Schema):
    message: str
    url: str
    vector: VectorCreated


class VectorInfo(Schema):
    """A vector with Neuronpedia's `Neuron` field names (`layer` is the source id)."""

    modelId: str
    layer: str
    index: str
    vectorLabel: str
    vectorDefaultSteerStrength: float
    hookName: str
    vector: list[float]
    createdAt: str
    visibility: WireVisibility = "UNLISTED"


class VectorGetResponse(Schema):
    vector: VectorInfo


class VectorListOwnedResponse(Schema):
    vectors: list[VectorInfo]


# --- bring your own model and SAEs -----------------------------------------------------------


class ModelNewRequest(Schema):
    id: str = Field(min_length=1, max_length=32)
    layers: int = Field(ge=1, le=127)
    displayName: str | None = Field(default=None, min_length=1, max_length=64)
    url: str | None = Field(default=None, max_length=512)
    dimension: int | None = Field(
        default=None,
        ge=1,
        le=MAX_VECTOR_LENGTH,
        description="The residual stream's width (Interpedia's addition: custom vectors "
        "on the model are checked against it).",
    )


class ModelNewResponse(Schema):
    id: str
    displayName: str
    layers: int
    dimension: int | None
    website: str | None
    creatorId: str | None
    visibility: str = "UNLISTED"


class SourceSetNewRequest(Schema):
    name: str = Field(min_length=1, max_length=128)
    modelId: str = Field(max_length=128)
    description: str | None = Field(default=None, max_length=128)
    url: str | None = Field(default=None, max_length=512)
    visibility: WireVisibility = Field(
        default="UNLISTED",
        description="Neuronpedia's default: its features are read by link, not listed.",
    )


class SourceSetSource(Schema):
    id: str
    modelId: str
    setName: str
    hookName: str
    hasDashboards: bool
    inferenceEnabled: bool


class SourceSetResponse(Schema):
    """A source set with its sources, in Neuronpedia's `SourceSet` fields."""

    name: str
    modelId: str
    description: str
    type: str
    urls: list[str]
    creatorId: str | None
    visibility: str = "UNLISTED"
    sources: list[SourceSetSource]


MAX_UPLOAD_FEATURES = 128  # the `neuronpedia` client's MAX_FEATURES_PER_BATCH
MAX_ACTIVATIONS_PER_FEATURE = 1000


class UploadActivation(Schema):
    tokens: list[str] = Field(min_length=1, max_length=MAX_TOKENS_PER_ACTIVATION)
    values: list[float] = Field(min_length=1, max_length=MAX_TOKENS_PER_ACTIVATION)
    # SAEDashboard's quantile interval the example was drawn from (the dashboard's bins).
    quantileMin: float | None = None
    quantileMax: float | None = None
    quantileFraction: float | None = Field(default=None, ge=0, le=1)


class UploadExplanation(Schema):
    text: str = Field(min_length=1, max_length=10_000)
    methodName: str | None = Field(default=None, min_length=1, max_length=128)
    modelName: str | None = Field(default=None, max_length=256)


class UploadLogit(Schema):
    token: str = Field(max_length=256)
    value: float


class UploadFeature(Schema):
    index: Index
    density: float | None = Field(default=None, ge=0, le=1)
    activations: list[UploadActivation] = Field(
        default_factory=list, max_length=MAX_ACTIVATIONS_PER_FEATURE
    )
    explanations: list[UploadExplanation] = Field(default_factory=list, max_length=100)
    topLogits: list[UploadLogit] | None = Field(default=None, max_length=100)
    bottomLogits: list[UploadLogit] | None = Field(default=None, max_length=100)


class FeatureUploadBatchRequest(Schema):
    modelId: str = Field(max_length=128)
    source: str = Field(max_length=128)
    features: list[UploadFeature] = Field(min_length=1, max_length=MAX_UPLOAD_FEATURES)


class ActivationUploadBatchRequest(Schema):
    """What `activation/upload-batch` reads, streamed: the header fields first."""

    modelId: str = Field(max_length=128)
    source: str = Field(max_length=128)
    index: Index
    activations: list[UploadActivation] = Field(
        max_length=MAX_UPLOAD_ACTIVATIONS,
        description=f"At most {MAX_UPLOAD_ACTIVATIONS:,} rows in a body of at most "
        f"{MAX_UPLOAD_BYTES:,} bytes.",
    )


class UploadBatchResponse(Schema):
    message: str
    count: int


# --- features in bulk, and similar features ----------------------------------------------

FEATURES_PER_OFFSET_PAGE = 25  # Neuronpedia's NEURONS_TO_LOAD_PER_REQUEST


class FeaturesBatchItem(FeatureKey):
    maxActsToReturn: int | None = Field(default=None, ge=0, le=100)


class FeaturesOffsetRequest(Schema):
    modelId: str = Field(max_length=128)
    layer: str = Field(max_length=128)
    offset: Offset = 0


class CossimRequest(Schema):
    modelId: str = Field(max_length=128)
    source: str = Field(max_length=128)
    index: Index
    targetModelId: str = Field(max_length=128)
    targetSourceId: str = Field(max_length=128)


class CossimFeatureRef(Schema):
    model: str
    source: str
    index: int


class CossimFeature(Schema):
    feature: CossimFeatureRef
    cosine_similarity: float


class CossimResponse(Schema):
    """The inference service's answer: the target source's features nearest by decoder cosine."""

    feature: CossimFeatureRef | None = None
    topk_decoder_cossim_features: list[CossimFeature]


class SourceReleaseNewRequest(Schema):
    name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = Field(default="", max_length=10_000)
    urls: list[Annotated[str, StringConstraints(max_length=512)]] = Field(
        default_factory=list, max_length=16
    )
    creatorName: str = Field(default="", max_length=256)


class SourceReleaseResponse(Schema):
    name: str
    description: str
    urls: list[str]
    creatorName: str
    creatorId: str | None


class SourceNewRequest(Schema):
    modelId: str = Field(max_length=128)
    id: str = Field(min_length=3, max_length=128)
    setName: str = Field(min_length=1, max_length=128)
    hookName: str = Field(default="", max_length=256)
    saelensConfig: dict[str, Any] | None = None


class SourceNewResponse(SourceFields):
    modelId: str
