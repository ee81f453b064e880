"""Wire models of /v1/activation/*."""

from typing import Literal

from pydantic import Field

from interpedia_core.wire import FeatureIndex
from interpedia_inference.schemas.common import BaseSchema, HeadIndex, Layer

# Most features /activation/all(-batch) return.
MAX_NUM_RESULTS = 1000
RAW_MAX_PROMPTS = 16


class ActivationSingleRequest(BaseSchema):
    prompt: str = Field(description="Text to compute activations for")
    model: str = Field(description="Model id the server serves")
    source: str | None = Field(default=None, description="Source id, e.g. 6-res-demo (with index)")
    index: str | FeatureIndex | None = Field(
        default=None, description="Feature index (with source)"
    )
    vector: list[float] | None = Field(default=None, description="Custom vector (with hook)")
    hook: str | None = Field(default=None, description="Hook the custom vector reads (with vector)")


class ActivationSingleBatchRequest(BaseSchema):
    prompts: list[str] = Field(min_length=1, description="Texts to compute activations for")
    model: str
    source: str | None = None
    index: str | FeatureIndex | None = None
    vector: list[float] | None = None
    hook: str | None = None


class DfaFields(BaseSchema):
    """Direct feature attribution, for features of SAEs on attention output only."""

    dfa_values: list[float] | None = Field(
        default=None,
        description="SAEs on attn.hook_z only: how much each source position feeds the feature "
        "at dfa_target_index through attention (direct feature attribution)",
    )
    dfa_max_value: float | None = None
    dfa_target_index: int | None = Field(default=None, description="The max-activating position")


class ActivationValues(DfaFields):
    values: list[float] = Field(description="The activation on each token")
    max_value: float
    max_value_index: int


class ActivationSingleResponse(BaseSchema):
    activation: ActivationValues
    tokens: list[str]
    tokens_is_special: list[bool] = Field(description="True where the token is a special token")


class ActivationSingleBatchResponse(BaseSchema):
    results: list[ActivationSingleResponse]


class ActivationAllRequest(BaseSchema):
    prompt: str
    model: str
    source_set: str = Field(description="Source set, e.g. res-demo")
    selected_sources: list[str] = Field(
        default_factory=list, description="Sources of the set to use; empty: all of them"
    )
    sort_by_token_indexes: list[int] = Field(
        default_factory=list,
        description="Rank by the sum over these token positions; empty: by max over all tokens",
    )
    ignore_bos: bool = Field(default=True, description="Leave the BOS position out of ranking")
    feature_filter: list[FeatureIndex] | None = Field(
        default=None, description="Only consider these feature indices"
    )
    num_results: int = Field(default=25, gt=0, le=MAX_NUM_RESULTS)


class ActivationAllBatchRequest(BaseSchema):
    prompts: list[str] = Field(min_length=1)
    model: str
    source_set: str
    selected_sources: list[str] = Field(default_factory=list)
    sort_by_token_indexes: list[int] = Field(default_factory=list)
    ignore_bos: bool = True
    feature_filter: list[FeatureIndex] | None = None
    num_results: int = Field(default=25, gt=0, le=MAX_NUM_RESULTS)


class FeatureActivation(DfaFields):
    source: str
    index: int
    values: list[float]
    sum_values: float | None = None
    max_value: float
    max_value_index: int


class ActivationAllResponse(BaseSchema):
    activations: list[FeatureActivation]
    tokens: list[str]
    counts: list[list[float]] | None = Field(
        default=None, description="Per selected source (by layer), active features per token"
    )


class ActivationAllBatchResponse(BaseSchema):
    results: list[ActivationAllResponse]


class ActivationTopkByTokenRequest(BaseSchema):
    prompt: str
    model: str
    source: str
    top_k: int = Field(default=5, gt=0, description="Features per token position")
    ignore_bos: bool = Field(default=False, description="Leave out the BOS position")


class ActivationTopkByTokenBatchRequest(BaseSchema):
    prompts: list[str] = Field(min_length=1)
    model: str
    source: str
    top_k: int = Field(default=5, gt=0)
    ignore_bos: bool = False


class TopFeature(BaseSchema):
    feature_index: int
    activation_value: float


class TokenTopFeatures(BaseSchema):
    token_position: int
    token: str
    is_special: bool
    top_features: list[TopFeature]


class ActivationTopkByTokenResponse(BaseSchema):
    results: list[TokenTopFeatures]
    tokens: list[str]


class ActivationTopkByTokenBatchResponse(BaseSchema):
    results: list[ActivationTopkByTokenResponse]


class ActivationSourceRequest(BaseSchema):
    prompts: list[str] = Field(min_length=1)
    model: str
    source: str


class SourcePromptResult(BaseSchema):
    tokens: list[str]
    active_features: dict[str, list[list[float]]] = Field(
        alias="activeFeatures",
        description="Feature index → [[token_index, value], ...] where it is active",
    )


class ActivationSourceResponse(BaseSchema):
    results: list[SourcePromptResult]


class ActivationRawRequest(BaseSchema):
    """Raw hook activations at chosen layers, no SAE involved (Neuronpedia's
    `/activation/raw`, widened to any per-block hook point and to every token)."""

    prompts: list[str] = Field(min_length=1, max_length=RAW_MAX_PROMPTS)
    model: str | None = Field(default=None, description="Model id; omitted: the served one")
    layers: list[Layer] | None = Field(default=None, description="Blocks to read; omitted: all")
    hook_point: str = Field(
        default="residual_stream",
        description=(
            "`residual_stream` (hook_resid_post, Neuronpedia's only one) or the hook's name "
            "inside a block, e.g. `hook_resid_pre`, `attn.hook_z`, `mlp.hook_post`"
        ),
    )
    type: Literal["final_output_token", "all_tokens"] = Field(
        default="final_output_token",
        description="The last token's vector (Neuronpedia's) or every token's",
    )


class ActivationRawLayer(BaseSchema):
    layer: int
    token_indices: list[int] = Field(description="Token positions of the rows of `values`")
    values: list[list[float]] = Field(description="[len(token_indices), d_hook]")


class ActivationRawPromptResult(BaseSchema):
    token_strings: list[str]
    token_ids: list[int]
    activations: list[ActivationRawLayer]


class ActivationRawResponse(BaseSchema):
    hook_point: str
    type: str
    dtype: str
    device: str
    results: list[ActivationRawPromptResult]


class ActivationAttentionRequest(BaseSchema):
    """One layer/head's attention pattern over a prompt."""

    prompt: str
    model: str
    layer: Layer
    head: HeadIndex


class ActivationAttentionResponse(BaseSchema):
    """Sparse, as Neuronpedia returns it: per query row its top keys above a threshold,
    each entry at flat index `q * seq_len + k`."""

    seq_len: int
    attention_indices: list[int]
    attention_values: list[float]
    max_activation: float = Field(description="Largest weight outside row 0 and column 0 (BOS)")
    tokens: list[str]
