"""Shared pieces of the wire models."""

from typing import Annotated

from pydantic import Field

from interpedia_core.dialect import WireSchema
from interpedia_core.wire import INT32_MAX

# Steering strengths beyond this are refused: they only produce NaNs or garbage.
MAX_ABS_STRENGTH = 1.0e4
# Most tokens one steered completion may generate; a server's cap may only be lower.
MAX_COMPLETION_TOKENS = 256

# Positions inside the model: non-negative and 32-bit in the spec, so clients and fuzzers see
# the bound; whether one exists in the served model (a layer below its depth, a token id
# below its vocabulary) is a 400 that names the limit.
Layer = Annotated[int, Field(ge=0, le=INT32_MAX, description="Block index (0-based).")]
HeadIndex = Annotated[int, Field(ge=0, le=INT32_MAX, description="Attention head (0-based).")]
TokenId = Annotated[int, Field(ge=0, le=INT32_MAX, description="Token id in the vocabulary.")]


class BaseSchema(WireSchema):
    """Base of the inference wire models: both of Neuronpedia's dialects (see
    `interpedia_core.dialect`); unknown fields are ignored, as Neuronpedia's clients may
    send more."""
