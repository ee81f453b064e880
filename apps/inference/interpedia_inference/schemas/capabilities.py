"""Wire models of GET /v1/capabilities."""

from pydantic import Field

from interpedia_inference.schemas.common import BaseSchema


class CapabilitiesResponse(BaseSchema):
    model: str = Field(description="The model this server serves (Neuronpedia's field)")
    model_names: list[str] = Field(description="Every name a request may use for that model")
    device: str
    token_limit: int = Field(description="Longest prompt, in tokens, any endpoint accepts")
    max_completion_tokens: int = Field(description="Most tokens one steering request generates")
    sae_sets: list[str] = Field(description="Source sets of the configured SAEs")
    sources: list[str] = Field(description="Configured SAE sources (`neurons` sets come free)")
