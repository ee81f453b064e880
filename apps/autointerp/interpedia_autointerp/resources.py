"""Building the service's heavy resources from settings: embedding models and the LLM client.

Shared by the app's lifespan, the jobs and the CLI, so all three load them the same way.
"""

from interpedia_autointerp.embeddings import EmbedderRegistry, LocalEmbedder, OpenAIEmbedder
from interpedia_autointerp.llm import LLMClient, LLMConfig, OpenAIClients
from interpedia_autointerp.settings import AutointerpSettings
from interpedia_core.errors import ConfigurationError


def build_embedders(
    settings: AutointerpSettings, clients: OpenAIClients | None = None
) -> EmbedderRegistry:
    """The local model always; OpenAI's when opted in. Slow (loads a model): call off-loop.

    OpenAI embeddings go through `clients` (the service's shared ones) when given.
    """
    registry = EmbedderRegistry(settings.embedding_model)
    registry.register(LocalEmbedder())
    if settings.openai_embeddings:
        key = settings.openai_api_key or settings.llm_api_key
        if not key:
            raise ConfigurationError(
                "OpenAI embeddings need INTERPEDIA_AUTOINTERP_OPENAI_API_KEY (or LLM_API_KEY)"
            )
        config = LLMConfig(
            model="",
            base_url=settings.openai_base_url,
            api_key=key,
            timeout=settings.request_timeout,
            max_retries=settings.llm_max_retries,
        )
        registry.register(OpenAIEmbedder((clients or OpenAIClients()).client(config)))
    if settings.embedding_model not in registry.names():
        raise ConfigurationError(
            f"INTERPEDIA_AUTOINTERP_EMBEDDING_MODEL={settings.embedding_model!r} is not available "
            f"(have: {', '.join(registry.names())})"
        )
    return registry


def build_llm(
    settings: AutointerpSettings, clients: OpenAIClients | None = None
) -> LLMClient | None:
    """The configured chat model, on `clients` (shared, closed with them) when given."""
    if not settings.llm_model:
        return None
    return LLMClient(
        LLMConfig(
            model=settings.llm_model,
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key,
            timeout=settings.request_timeout,
            max_retries=settings.llm_max_retries,
            max_concurrency=settings.max_concurrency,
        ),
        clients,
    )
