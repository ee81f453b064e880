"""Shared pieces of the wire models."""

from pydantic import Field

from interpedia_core.wire import WireSchema


class BaseSchema(WireSchema):
    """Base of the autointerp wire models: both of Neuronpedia's dialects (see
    `interpedia_core.wire`); unknown fields are ignored, as Neuronpedia's clients may send more."""


class NPActivation(BaseSchema):
    """One example: its tokens and the feature's value on each (Neuronpedia's shape)."""

    tokens: list[str] = Field(description="Tokens of the example text")
    values: list[float] = Field(description="The feature's activation on each token")
