"""Wire models of /v1/steer/*."""

from enum import StrEnum
from typing import Any

from pydantic import Field

from interpedia_inference.schemas.common import MAX_ABS_STRENGTH, BaseSchema


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
    index: int = Field(ge=0)
    strength: float = _strength()
    steering_vector: list[float] | None = Field(
        default=None, description="Ignored on input; the server uses the SAE's decoder row"
    )


class SteerVector(BaseSchema):
    steering_vector: list[float] = Field(min_length=1)
    strength: float = _strength()
    hook: str


class SteerCommon(BaseSchema):
    model: str
    steer_method: SteerMethod = SteerMethod.SIMPLE_ADDITIVE
    normalize_steering: bool = False
    types: list[SteerType] = Field(
        default_factory=lambda: [SteerType.STEERED, SteerType.DEFAULT], min_length=1
    )
    features: list[SteerFeature] | None = None
    vectors: list[SteerVector] | None = None
    n_completion_tokens: int = Field(default=32, ge=1)
    temperature: float = Field(default=0.0, ge=0, le=100, allow_inf_nan=False)
    strength_multiplier: float = Field(
        default=1.0, ge=-MAX_ABS_STRENGTH, le=MAX_ABS_STRENGTH, allow_inf_nan=False
    )
    freq_penalty: float = Field(default=0.0, ge=-100, le=100, allow_inf_nan=False)
    seed: float = Field(default=0, allow_inf_nan=False)
    stream: bool = False
    n_logprobs: int = Field(default=0, ge=0, le=10)


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
