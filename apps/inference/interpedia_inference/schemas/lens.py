"""Wire models of POST /v1/lens/prompt: the request, and the NDJSON frames it streams.

The frames keep snake_case names in both dialects (`SnakeCaseFrame`): Neuronpedia's webapp
forwards them verbatim into its own API and stored share links, so their names are a public
contract.
"""

from enum import StrEnum
from typing import Literal

from pydantic import Field

from interpedia_core.dialect import SnakeCaseFrame
from interpedia_core.wire import Seed
from interpedia_inference.schemas.common import BaseSchema, Layer, TokenId


class LensType(StrEnum):
    LOGIT_LENS = "LOGIT_LENS"
    JACOBIAN_LENS = "JACOBIAN_LENS"


class LensChatMessage(BaseSchema):
    role: str = Field(min_length=1)
    content: str


class LensSteerToken(BaseSchema):
    """A read-out to steer on: the exact decoded token string (whitespace kept, e.g. " cat")."""

    token: str
    type: LensType = LensType.LOGIT_LENS


class LensPromptRequest(BaseSchema):
    model: str
    type: list[LensType] = Field(default_factory=lambda: [LensType.LOGIT_LENS], min_length=1)
    prompt: str | None = Field(default=None, description="Raw text (or `chat`)")
    chat: list[LensChatMessage] | None = Field(default=None, description="Messages (or `prompt`)")
    input_token_ids: list[TokenId] = Field(
        default_factory=list, description="Exact token ids to read over (no generation)"
    )
    top_n: int = Field(default=10, ge=1, le=100)
    layers: list[Layer] = Field(
        default_factory=list, description="Layers to read; empty: all. The last is always read"
    )
    max_seq_len: int | None = Field(default=None, ge=1)
    prepend_bos: bool = True
    stream: bool = Field(default=True, description="NDJSON frames; false: one JSON object")
    temperature: float = Field(default=1.0, ge=0, le=100, allow_inf_nan=False)
    num_completion_tokens: int = Field(default=0, ge=0)
    seed: Seed = Field(default=0, description="Seed of the sampling of generated tokens")
    cached_token_ids: list[TokenId] = Field(
        default_factory=list,
        description="Ids the caller already has read-outs for: their common prefix is skipped",
    )
    steer_tokens: list[LensSteerToken] = Field(default_factory=list)
    steer_layers: list[Layer] = Field(
        default_factory=list, description="Layers to steer at; empty: the read-out layers"
    )
    steer_strength: float = Field(
        default=0.0,
        ge=-100,
        le=100,
        allow_inf_nan=False,
        description="Added along each steer token's direction, times the residual's norm; "
        "each layer's step is capped at the norm (|strength| > 1 reads as 1), as Neuronpedia's",
    )
    steer_ablate: bool = Field(default=False, description="Project the directions out instead")
    swap_token: LensSteerToken | None = Field(
        default=None, description="Move the residual's part along steer_tokens[0] onto this"
    )
    steer_generated_tokens: bool = Field(
        default=False, description="Also intervene at generated positions"
    )
    filter_non_word_tokens: bool = Field(
        default=False,
        description="Rank only word-like tokens (the last layer's own top-1 always stays); "
        "probabilities are still over the whole vocabulary",
    )


class LensTypeSlice(SnakeCaseFrame):
    type: LensType
    top_tokens: list[list[str]] = Field(description="[layers, top_n]")
    top_probs: list[list[float]] = Field(description="[layers, top_n]")


class LensMetaMessage(SnakeCaseFrame):
    kind: Literal["meta"] = "meta"
    model: str
    types: list[LensType]
    layers_by_type: dict[str, list[int]]
    top_n: int
    prompt_len: int
    num_completion_tokens: int
    temperature: float
    prepend_bos: bool
    reuse_len: int = 0


class LensPromptToken(SnakeCaseFrame):
    position: int
    token: str
    id: int
    is_generated: bool = False
    is_char_continuation: bool = False
    message_index: int | None = None
    role: str | None = None
    channel: str | None = None
    section: str | None = None


class LensPromptTokensMessage(SnakeCaseFrame):
    kind: Literal["prompt"] = "prompt"
    tokens: list[LensPromptToken]


class LensTokenMessage(LensPromptToken):
    kind: Literal["token"] = "token"
    results: list[LensTypeSlice]


class LensDoneMessage(SnakeCaseFrame):
    kind: Literal["done"] = "done"
    seq_len: int
    prompt_len: int
    vocab_size: int
    completion: str


class LensErrorMessage(SnakeCaseFrame):
    kind: Literal["error"] = "error"
    error: str


class LensPromptResponse(SnakeCaseFrame):
    """The whole run at once (`stream: false`)."""

    meta: LensMetaMessage
    tokens: list[LensTokenMessage]
    done: LensDoneMessage
