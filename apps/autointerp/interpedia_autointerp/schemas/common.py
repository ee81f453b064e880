"""Shared pieces of the wire models."""

from pydantic import BaseModel, ConfigDict, Field


class BaseSchema(BaseModel):
    # Unknown fields are ignored rather than refused: Neuronpedia's clients may send more.
    model_config = ConfigDict(extra="ignore")


class NPActivation(BaseSchema):
    """One example: its tokens and the feature's value on each (Neuronpedia's shape)."""

    tokens: list[str] = Field(min_length=1, description="Tokens of the example text")
    values: list[float] = Field(
        min_length=1, description="The feature's activation on each token (one per token)"
    )
