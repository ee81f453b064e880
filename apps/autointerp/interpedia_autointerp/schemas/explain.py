"""POST /v1/explain/*."""

from typing import Literal

from pydantic import Field

from interpedia_autointerp.schemas.common import BaseSchema, NPActivation
from interpedia_core.wire import FeatureIndex

ExplainMethod = Literal["auto", "offline", "llm"]


class ExplainDefaultRequest(BaseSchema):
    """Neuronpedia's request. With no LLM configured here and no key sent, explains offline."""

    activations: list[NPActivation] = Field(min_length=1)
    openrouter_key: str | None = Field(
        default=None, description="OpenRouter key, used only when this server has no LLM"
    )
    model: str | None = Field(
        default=None, description="OpenRouter model, used only when this server has no LLM"
    )


class ExplainDefaultResponse(BaseSchema):
    explanation: str


class ExplainActivationsRequest(BaseSchema):
    activations: list[NPActivation] = Field(min_length=1)
    logit_tokens: list[str] = Field(
        default_factory=list, description="Tokens the feature promotes (logit lens), top first"
    )
    method: ExplainMethod = Field(
        default="auto",
        description="auto: the LLM when one is configured, else offline; llm needs one "
        "configured (400 without).",
    )


class ExplanationOut(BaseSchema):
    description: str
    type_name: str
    explanation_model_name: str | None


class ExplainActivationsResponse(ExplanationOut):
    pass


class ExplainFeatureRequest(BaseSchema):
    model_id: str
    source_id: str
    index: FeatureIndex
    method: ExplainMethod = "auto"
    store: bool = Field(default=True, description="Store the explanation (and its embedding)")


class ExplainFeatureResponse(ExplanationOut):
    explanation_id: int | None = Field(description="Id of the stored explanation, if stored")
