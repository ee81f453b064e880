"""Settings of the inference service (`INTERPEDIA_INFERENCE_*`).

Neuronpedia's plain variable names (`MODEL_ID`, `SECRET`, `TOKEN_LIMIT`, `DEVICE`, ...) are
accepted too, so a Neuronpedia deployment's environment configures this server unchanged.
"""

from typing import Annotated, Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from interpedia_core.dialect import WireDialect, wire_dialect_field
from interpedia_core.settings import ServiceSettings
from interpedia_inference.schemas.common import MAX_COMPLETION_TOKENS

PREFIX = "INTERPEDIA_INFERENCE_"


def _env(name: str) -> AliasChoices:
    return AliasChoices(f"{PREFIX}{name.upper()}", name.upper(), name)


class InferenceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", populate_by_name=True)

    port: int = Field(default=5002, description="Port of the inference service.")
    secret: str | None = Field(
        default=None,
        validation_alias=_env("secret"),
        description="If set, every request but /health needs header X-SECRET-KEY with this "
        "value (default: INTERPEDIA_SECRET).",
    )
    model_id: str = Field(
        default="smollm2-135m",
        validation_alias=_env("model_id"),
        description="Interpedia model id, Hugging Face id or local HF folder to serve.",
    )
    sae_sources: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=_env("sae_sources"),
        description="SAELens folders or `release:sae_id` entries (comma-separated or JSON list).",
    )
    sae_source_set: str = Field(
        default="res-demo",
        validation_alias=_env("sae_source_set"),
        description="Source-set name of the configured SAEs; each is named `{layer}-{set}`.",
    )
    device: str = Field(
        default="auto",
        validation_alias=_env("device"),
        description="cpu, cuda, cuda:N, or auto (CUDA when present).",
    )
    dtype: str = Field(
        default="float32",
        validation_alias=_env("dtype"),
        description="float32, bfloat16 or float16 for the model and SAEs.",
    )
    token_limit: int = Field(
        default=1024,
        gt=0,
        validation_alias=_env("token_limit"),
        description="Longest prompt (in tokens, BOS included) any endpoint accepts.",
    )
    max_loaded_saes: int = Field(
        default=8,
        gt=0,
        validation_alias=AliasChoices(
            f"{PREFIX}MAX_LOADED_SAES", "MAX_LOADED_SAES", "max_loaded_saes"
        ),
        description="SAEs kept in memory; the least recently used leaves first.",
    )
    max_completion_tokens: int = Field(
        default=MAX_COMPLETION_TOKENS,
        gt=0,
        le=MAX_COMPLETION_TOKENS,
        validation_alias=_env("max_completion_tokens"),
        description=f"Cap on n_completion_tokens for steering (at most {MAX_COMPLETION_TOKENS}).",
    )
    batch_window_ms: float = Field(
        default=4.0,
        ge=0,
        validation_alias=_env("batch_window_ms"),
        description="How long the activation micro-batcher waits to gather concurrent requests.",
    )
    max_batch_size: int = Field(
        default=16,
        gt=0,
        validation_alias=_env("max_batch_size"),
        description="Most prompts in one padded activation forward.",
    )
    lens_bf16: bool = Field(
        default=True,
        validation_alias=_env("lens_bf16"),
        description="Logit lens: pick each layer's top tokens and sum its softmax over the "
        "vocabulary in bf16 on a CPU that runs bf16 natively, then recompute the top "
        "tokens exactly in float32 (same top tokens; probabilities within 0.005). "
        "Not used on CUDA, where the lens reads out in float32.",
    )

    wire_dialect: WireDialect = wire_dialect_field()
    torch_threads: int = Field(
        default=0,
        ge=0,
        validation_alias=_env("torch_threads"),
        description=(
            "CPU threads for torch (0: torch's default). On a CPU shared with other busy "
            "processes, 1 avoids OpenMP threads spinning against each other."
        ),
    )

    @field_validator("sae_sources", mode="before")
    @classmethod
    def _split_sources(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value
