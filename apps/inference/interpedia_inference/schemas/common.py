"""Shared pieces of the wire models."""

from interpedia_core.dialect import WireSchema

# Steering strengths beyond this are refused: they only produce NaNs or garbage.
MAX_ABS_STRENGTH = 1.0e4
# Most tokens one steered completion may generate; a server's cap may only be lower.
MAX_COMPLETION_TOKENS = 256


class BaseSchema(WireSchema):
    """Base of the inference wire models: both of Neuronpedia's dialects (see
    `interpedia_core.dialect`); unknown fields are ignored, as Neuronpedia's clients may
    send more."""
