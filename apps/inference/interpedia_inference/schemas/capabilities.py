"""Wire models of GET /v1/capabilities, GET /v1/steer/health and POST /initialize."""

from pydantic import Field

from interpedia_inference.schemas.common import BaseSchema


class CapabilitiesResponse(BaseSchema):
    model: str = Field(description="The model this server serves (Neuronpedia's field)")
    model_names: list[str] = Field(description="Every name a request may use for that model")
    backend: str = Field(description="What runs the model: transformer_lens (TransformerBridge)")
    device: str
    dtype: str
    num_layers: int = Field(description="Layers /activation/raw returns when none are named")
    n_heads: int
    d_model: int
    token_limit: int = Field(description="Longest prompt, in tokens, any endpoint accepts")
    activation_token_limit: int = Field(description="Longest prompt of the activation paths")
    lens_token_limit: int = Field(description="Longest prompt of /lens/prompt")
    max_completion_tokens: int = Field(description="Most tokens one steering request generates")
    max_num_results: int = Field(description="Most features /activation/all returns")
    max_raw_prompts: int = Field(description="Most prompts in one /activation/raw request")
    hook_points: list[str] = Field(
        description="Hook points inside each block (`blocks.{layer}.` + name) that "
        "/activation/raw and SAEs can read"
    )
    steer_methods: list[str]
    sae_sets: list[str] = Field(description="Source sets of the configured SAEs")
    sources: list[str] = Field(description="Configured SAE sources (`neurons` sets come free)")
    endpoints: dict[str, bool] = Field(
        description="Neuronpedia's endpoint keys (activation_raw, lens_logit, dfa, ...): "
        "whether this server serves each"
    )


class InitializeRequest(BaseSchema):
    """Optional body of POST /initialize: a model and sources to serve instead (Neuronpedia
    names only the model, in the `custom_hf_model_id` query parameter)."""

    model_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="Interpedia model id, Hugging Face id or local HF folder; it must be "
        "available here (no download)",
    )
    sae_sources: list[str] | None = Field(
        default=None,
        max_length=256,
        description="SAELens folders or `release:sae_id` entries of that model; none given: "
        "the configured ones if the model stays, else none",
    )
    sae_source_set: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Source-set name of those SAEs (default: the configured one)",
    )


class SteerHealthResponse(BaseSchema):
    """The steering engine's state (Neuronpedia reports its vLLM engine's here)."""

    status: str = Field(description="ok")
    device: str
    active_generations: int = Field(description="Steered or plain generations running now")
    threads: int = Field(description="Threads of this process")
    torch_threads: int = Field(description="Threads torch uses per forward")
    max_rss_bytes: int = Field(description="Peak resident memory of this process")


class InitializeResponse(BaseSchema):
    status: str = Field(description="initialized")
    model: str
    sources: list[str]
