"""Requests and answers of Neuronpedia's graph-server routes, with its field names.

Ranges are checked here (a threshold outside (0, 1] is a 422 naming the field); limits
that depend on the deployment (prompt tokens, feature nodes) are checked by the domain.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class GraphSchema(BaseModel):
    model_config = ConfigDict(populate_by_name=True, protected_namespaces=())


class GraphChatMessage(GraphSchema):
    role: str = Field(max_length=32)
    content: str = Field(max_length=20_000)


class PromptInput(GraphSchema):
    """A plain prompt, or chat turns rendered with the model's chat template."""

    prompt: str = Field(default="", max_length=20_000)
    messages: list[GraphChatMessage] | None = Field(
        default=None,
        max_length=64,
        description="Chat turns; the prompt is rendered from them with the model's chat "
        "template, the last turn left open for the model to continue.",
    )


class AttributionParameters(PromptInput):
    """What circuit-tracer's `attribute` and the pruning of its graph take."""

    max_n_logits: int = Field(default=10, ge=1, le=50, description="Most logit nodes.")
    desired_logit_prob: float = Field(
        default=0.95,
        gt=0,
        lt=1,
        description="Logits are kept until their probabilities reach this sum.",
    )
    node_threshold: float = Field(
        default=0.8, gt=0, le=1, description="Share of cumulative influence the kept nodes carry."
    )
    edge_threshold: float = Field(
        default=0.98, gt=0, le=1, description="Share of cumulative influence the kept edges carry."
    )
    max_feature_nodes: int | None = Field(
        default=None, ge=1, description="Feature nodes to trace (default: the service's)."
    )
    batch_size: int | None = Field(
        default=None, ge=1, le=1024, description="Backward passes per batch (default: service's)."
    )

    def attribution_options(self) -> dict[str, Any]:
        """The fields that are options of the attribution (`attribution.AttributionOptions`)."""
        return self.model_dump(
            include=set(AttributionParameters.model_fields) - {"prompt", "messages"}
        )


class GraphGenerationRequest(AttributionParameters):
    """POST /generate-graph: trace and return (or upload) one graph, waiting for it."""

    model_id: str = Field(max_length=256)
    slug_identifier: str = Field(max_length=128)
    signed_url: str | None = Field(
        default=None, max_length=4096, description="PUT the graph JSON here, not in the answer."
    )
    user_id: str | None = Field(default=None, max_length=256, description="Creator's name.")
    compress: bool = Field(default=False, description="gzip the upload (with signed_url).")


class GraphGenerationResponse(GraphSchema):
    """The receipt of an upload (with `signed_url`); without it the graph JSON is returned."""

    success: str | None = None
    error: str | None = None


class ForwardPassRequest(PromptInput):
    max_n_logits: int = Field(default=10, ge=1, le=50)
    desired_logit_prob: float = Field(default=0.95, gt=0, lt=1)


class SalientLogit(GraphSchema):
    token: str
    token_id: int
    probability: float


class ForwardPassResponse(GraphSchema):
    prompt: str
    input_tokens: list[str]
    salient_logits: list[SalientLogit]
    total_salient_tokens: int
    cumulative_probability: float


class SteerFeature(GraphSchema):
    """One feature intervention: set the feature to its activation + delta, or to 0 (ablate)."""

    layer: int = Field(ge=0)
    index: int = Field(ge=0)
    token_active_position: int = Field(ge=0, description="Where the feature's value is read.")
    steer_position: int | None = Field(default=None, ge=0, description="Where it is set.")
    steer_generated_tokens: bool = Field(
        default=False, description="Set it on every generated token instead of one position."
    )
    delta: float | None = None
    ablate: bool = False


class SteerRequest(PromptInput):
    model_id: str = Field(max_length=256)
    features: list[SteerFeature] = Field(min_length=1, max_length=64)
    n_tokens: int = Field(default=10, ge=1)
    top_k: int = Field(default=5, ge=1, le=20)
    temperature: float = Field(default=0.0, ge=0, le=2)
    freq_penalty: float = Field(default=0.0, ge=-2, le=2)
    seed: int | None = None
    freeze_attention: bool = False
    transcoder_set: str | None = Field(
        default=None, max_length=128, description="Ours: the transcoder set (default: service's)."
    )


class TopLogit(GraphSchema):
    token: str
    prob: float


class LogitsByToken(GraphSchema):
    token: str
    top_logits: list[TopLogit]


class SteerResponse(GraphSchema):
    """Default and steered generations; the SCREAMING_SNAKE keys are Neuronpedia's wire names."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    default_generation: str = Field(alias="DEFAULT_GENERATION")
    steered_generation: str = Field(alias="STEERED_GENERATION")
    default_logits_by_token: list[LogitsByToken] = Field(alias="DEFAULT_LOGITS_BY_TOKEN")
    steered_logits_by_token: list[LogitsByToken] = Field(alias="STEERED_LOGITS_BY_TOKEN")


class ParseChatPromptRequest(GraphSchema):
    prompt: str = Field(min_length=1, max_length=20_000)


class ParseChatPromptResponse(GraphSchema):
    messages: list[GraphChatMessage] | None = Field(
        description="The chat turns, or None for a plain prompt."
    )
    is_chat: bool
    prompt: str
    unsteerable_positions: list[int] = Field(
        description="Token positions /steer ignores (the special token attribution leaves out)."
    )


class CheckBusyResponse(GraphSchema):
    busy: bool
