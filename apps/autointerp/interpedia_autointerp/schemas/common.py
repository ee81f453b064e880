"""Shared pieces of the wire models."""

from pydantic import Field

from interpedia_core.dialect import WireSchema


class BaseSchema(WireSchema):
    """Base of the autointerp wire models: both of Neuronpedia's dialects (see
    `interpedia_core.dialect`); unknown fields are ignored, as Neuronpedia's clients may
    send more."""


class NPActivation(BaseSchema):
    """One example: its tokens and the feature's value on each (Neuronpedia's shape)."""

    tokens: list[str] = Field(min_length=1, description="Tokens of the example text")
    values: list[float] = Field(
        min_length=1, description="The feature's activation on each token (one per token)"
    )
