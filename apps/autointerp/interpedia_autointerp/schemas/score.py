"""POST /v1/score/*."""

from typing import Any, Literal

from pydantic import Field

from interpedia_autointerp.schemas.common import BaseSchema, NPActivation
from interpedia_core.wire import BigRowId, NonBlankText

ScorerName = Literal["embedding", "detection", "fuzz", "simulation"]


class ScoreEmbeddingRequest(BaseSchema):
    activations: list[NPActivation] = Field(min_length=1)
    explanation: NonBlankText
    embedding_model: str | None = Field(
        default=None, description="Embedding model (default: the server's)"
    )


class ScoreEmbeddingBreakdown(BaseSchema):
    text: str
    distance: int = Field(description="Rank by max activation; -1 for non-activating examples")
    similarity: float


class ScoreEmbeddingResponse(BaseSchema):
    score: float = Field(description="ROC-AUC, 0 to 1")
    breakdown: list[ScoreEmbeddingBreakdown]


class ScoreFuzzDetectionRequest(BaseSchema):
    activations: list[NPActivation] = Field(min_length=1)
    explanation: NonBlankText
    openrouter_key: str | None = Field(
        default=None, description="OpenRouter key, used only when this server has no LLM"
    )
    model: str | None = Field(
        default=None, description="OpenRouter model, used only when this server has no LLM"
    )
    type: Literal["FUZZ", "DETECTION"]


class ScoreFuzzDetectionBreakdown(BaseSchema):
    str_tokens: list[str]
    activations: list[float]
    distance: int
    ground_truth: bool
    prediction: bool
    highlighted: bool
    probability: float
    correct: bool


class ScoreFuzzDetectionResponse(BaseSchema):
    score: float = Field(description="Balanced accuracy, 0 to 1")
    breakdown: list[ScoreFuzzDetectionBreakdown]


class ScoreSimulationRequest(BaseSchema):
    activations: list[NPActivation] = Field(min_length=1)
    explanation: NonBlankText


class ScoreSimulationBreakdown(BaseSchema):
    tokens: list[str]
    activations: list[float]
    predicted: list[int]
    correlation: float | None


class ScoreSimulationResponse(BaseSchema):
    score: float = Field(description="Correlation of simulated and true activations, -1 to 1")
    breakdown: list[ScoreSimulationBreakdown]


class ScoreExplanationRequest(BaseSchema):
    explanation_id: BigRowId
    scorers: list[ScorerName] = Field(
        default_factory=lambda: ["embedding"],
        min_length=1,
        description="detection, fuzz and simulation are LLM judges: they need an LLM "
        "configured on this server (400 without one).",
    )


class StoredScore(BaseSchema):
    id: int
    type_name: str
    value: float
    scorer_model: str | None
    details: dict[str, Any]


class ScoreExplanationResponse(BaseSchema):
    explanation_id: int
    scores: list[StoredScore]
