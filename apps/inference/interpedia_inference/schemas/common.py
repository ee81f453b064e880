"""Shared pieces of the wire models."""

from interpedia_core.wire import WireSchema

# Steering strengths beyond this are refused: they only produce NaNs or garbage.
MAX_ABS_STRENGTH = 1.0e4


class BaseSchema(WireSchema):
    """Base of the inference wire models: both of Neuronpedia's dialects (see
    `interpedia_core.wire`); unknown fields are ignored, as Neuronpedia's clients may send more."""
