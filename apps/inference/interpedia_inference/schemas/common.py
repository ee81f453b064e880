"""Shared pieces of the wire models."""

from pydantic import BaseModel, ConfigDict

# Steering strengths beyond this are refused: they only produce NaNs or garbage.
MAX_ABS_STRENGTH = 1.0e4
# Most tokens one steered completion may generate; a server's cap may only be lower.
MAX_COMPLETION_TOKENS = 256


class BaseSchema(BaseModel):
    # Unknown fields are ignored rather than refused: Neuronpedia's clients may send more.
    # populate_by_name lets camelCase aliases (activeFeatures, hookName) round-trip.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
