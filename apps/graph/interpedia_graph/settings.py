"""Graph service settings (`INTERPEDIA_GRAPH_*`)."""

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from interpedia_core.settings import ServiceSettings

PREFIX = "INTERPEDIA_GRAPH_"


class GraphSettings(ServiceSettings):
    """One model per process (like the inference service); its transcoder sets by name."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", populate_by_name=True)

    port: int = Field(default=5005, description="Port of the graph service.")
    model_id: str = Field(
        default="smollm2-135m",
        validation_alias=AliasChoices("INTERPEDIA_GRAPH_MODEL_ID", "MODEL_ID", "model_id"),
        description="The model whose graphs this service traces (MODEL_ID works too).",
    )
    transcoder_set: str | None = Field(
        default=None,
        description="Transcoder set used when a request names none (default: the model's "
        "first registered transcoder set).",
    )
    device: str = Field(default="cpu", description="Torch device of the model and transcoders.")
    max_prompt_tokens: int = Field(
        default=64, gt=0, description="Longest prompt a graph is traced for, in tokens."
    )
    max_feature_nodes_limit: int = Field(
        default=2048,
        gt=0,
        description="Most feature nodes a request may ask for (each costs a backward pass).",
    )
    default_max_feature_nodes: int = Field(
        default=256, gt=0, description="Feature nodes traced when a request names no number."
    )
    default_batch_size: int = Field(
        default=32, gt=0, description="Backward passes batched together during attribution."
    )
    max_queued: int = Field(
        default=4, gt=0, description="Graphs that may wait or run at once; more are refused."
    )
    generate_timeout: float = Field(
        default=1800.0,
        gt=0,
        description="Seconds POST /generate-graph waits for its graph before giving up.",
    )
    steer_max_tokens: int = Field(
        default=64, gt=0, description="Most tokens one /steer request may generate."
    )
