"""Settings of the autointerp service (`INTERPEDIA_AUTOINTERP_*`).

With no LLM configured the service still explains (offline explainer), embeds
(local all-MiniLM-L6-v2) and searches; the LLM judges (detection, fuzzing,
simulation) need `llm_base_url`/`llm_model` pointing at any OpenAI-compatible API.
"""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from interpedia_autointerp.embeddings import LOCAL_MODEL_NAME
from interpedia_autointerp.llm import OPENROUTER_BASE_URL
from interpedia_core.settings import ServiceSettings


class AutointerpSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="INTERPEDIA_AUTOINTERP_", extra="ignore", populate_by_name=True
    )

    port: int = Field(default=5003, description="Port of the autointerp service.")
    llm_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1. Unset: OpenAI's.",
    )
    llm_api_key: str | None = Field(default=None, description="Key for the LLM API.")
    llm_model: str | None = Field(
        default=None,
        description="Chat model for the LLM explainer and judges. Unset: offline explainer only.",
    )
    openrouter_base_url: str = Field(
        default=OPENROUTER_BASE_URL,
        description="API root for requests that bring an OpenRouter key (Neuronpedia's paths).",
    )
    embedding_model: str = Field(
        default=LOCAL_MODEL_NAME,
        description="Default embedding model for scoring and search queries.",
    )
    openai_embeddings: bool = Field(
        default=False,
        description="Also offer OpenAI text-embedding-3-large (256 dims); needs an API key.",
    )
    openai_api_key: str | None = Field(
        default=None, description="Key for OpenAI embeddings (falls back to llm_api_key)."
    )
    openai_base_url: str | None = Field(
        default=None, description="API root for OpenAI embeddings (unset: OpenAI's)."
    )
    request_timeout: float = Field(default=60.0, description="Seconds per LLM/embedding call.")
    llm_max_retries: int = Field(
        default=2, description="Retries (with backoff) on rate limits, timeouts and 5xx."
    )
    max_concurrency: int = Field(default=8, description="LLM calls in flight at once.")
    database_enabled: bool = Field(
        default=True,
        description="Connect to the database (search, stored features). Off: stateless paths only.",
    )

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_model)
