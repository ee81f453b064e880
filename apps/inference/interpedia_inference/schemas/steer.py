"""Wire models of /v1/steer/*."""

from enum import StrEnum
from typing import Any, Self

from pydantic import ConfigDict, Field, model_validator

from interpedia_core.wire import FeatureIndex, Seed
from interpedia_inference.schemas.common import (
    MAX_ABS_STRENGTH,
    MAX_COMPLETION_TOKENS,
    BaseSchema,
)


class SteerMethod(StrEnum):
    SIMPLE_ADDITIVE = "SIMPLE_ADDITIVE"
    ORTHOGONAL_DECOMP = "ORTHOGONAL_DECOMP"
    PROJECTION_CAP = "PROJECTION_CAP"


class SteerType(StrEnum):
    STEERED = "STEERED"
    DEFAULT = "DEFAULT"


def _strength() -> Any:
    return Field(ge=-MAX_ABS_STRENGTH, le=MAX_ABS_STRENGTH, allow_inf_nan=False)


class SteerFeature(BaseSchema):
    model: str
    source: str
    index: FeatureIndex
    strength: float = _strength()
    steering_vector: list[float] | None = Field(
        default=None, description="Ignored on input; the server uses the SAE's decoder row"
    )


class SteerVector(BaseSchema):
    steering_vector: list[float] = Field(min_length=1)
    strength: float = _strength()
    hook: str


def _exactly_one(*names: str) -> dict[str, Any]:
    """JSON Schema for "exactly one of these fields is a non-empty list"."""
    return {
        "oneOf": [
            {"required": [name], "properties": {name: {"type": "array", "minItems": 1}}}
            for name in names
        ]
    }


class SteerCommon(BaseSchema):
    """Steer with features (SAE decoder rows) or with raw vectors: exactly one of the two."""

    model_config = ConfigDict(json_schema_extra=_exactly_one("features", "vectors"))

    model: str
    steer_method: SteerMethod = SteerMethod.SIMPLE_ADDITIVE
    normalize_steering: bool = False
    types: list[SteerType] = Field(
        default_factory=lambda: [SteerType.STEERED, SteerType.DEFAULT], min_length=1
    )
    features: list[SteerFeature] | None = None
    vectors: list[SteerVector] | None = None
    n_completion_tokens: int = Field(
        default=32,
        ge=1,
        le=MAX_COMPLETION_TOKENS,
        description="Tokens to generate; a server may cap this lower (422 above its cap).",
    )
    temperature: float = Field(default=0.0, ge=0, le=100, allow_inf_nan=False)
    strength_multiplier: float = Field(
        default=1.0, ge=-MAX_ABS_STRENGTH, le=MAX_ABS_STRENGTH, allow_inf_nan=False
    )
    freq_penalty: float = Field(default=0.0, ge=-100, le=100, allow_inf_nan=False)
    seed: Seed = 0
    stream: bool = False
    n_logprobs: int = Field(default=0, ge=0, le=10)

    @model_validator(mode="after")
    def _features_or_vectors(self) -> Self:
        if bool(self.features) == bool(self.vectors):
            raise ValueError("give exactly one of features or vectors")
        return self


class SteerCompletionRequest(SteerCommon):
    prompt: str


class LogprobTop(BaseSchema):
    token: str
    logprob: float


class Logprob(BaseSchema):
    token: str
    logprob: float
    top_logprobs: list[LogprobTop]


class SteerCompletionOutput(BaseSchema):
    type: SteerType
    output: str = Field(description="Prompt (without BOS) followed by the completion")
    logprobs: list[Logprob] | None = None


class SteerCompletionResponse(BaseSchema):
    outputs: list[SteerCompletionOutput]


class ChatMessage(BaseSchema):
    role: str
    content: str


class SteerCompletionChatRequest(SteerCommon):
    prompt: list[ChatMessage] = Field(min_length=1)
    steer_special_tokens: bool = Field(
        default=False, description="Also steer the chat template's special tokens in the prompt"
    )


class SteerChatResult(BaseSchema):
    chat_template: list[ChatMessage]
    raw: str
    type: SteerType | None = None
    logprobs: list[Logprob] | None = None


class SteerCompletionChatResponse(BaseSchema):
    outputs: list[SteerChatResult]
    input: SteerChatResult
