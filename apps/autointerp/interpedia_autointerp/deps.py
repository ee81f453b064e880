"""Typed dependencies: what a route needs, declared once."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_autointerp.embeddings import EmbedderRegistry
from interpedia_autointerp.errors import NoDatabase, NoLLM, NotReady
from interpedia_autointerp.llm import LLMClient, LLMConfig, OpenAIClients
from interpedia_autointerp.settings import AutointerpSettings


def get_settings(request: Request) -> AutointerpSettings:
    return request.app.state.settings


def get_embedders(request: Request) -> EmbedderRegistry:
    if not request.app.state.ready:
        raise NotReady()
    return request.app.state.embedders


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    if not request.app.state.ready:
        raise NotReady()
    sessionmaker = request.app.state.sessionmaker
    if sessionmaker is None:
        raise NoDatabase()
    async with sessionmaker() as session:
        yield session


def get_llm(request: Request) -> LLMClient | None:
    """The configured LLM, or None (then explainers fall back to offline)."""
    return request.app.state.llm


def get_openai_clients(request: Request) -> OpenAIClients:
    return request.app.state.openai_clients


SettingsDep = Annotated[AutointerpSettings, Depends(get_settings)]
EmbeddersDep = Annotated[EmbedderRegistry, Depends(get_embedders)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
LLMDep = Annotated[LLMClient | None, Depends(get_llm)]
OpenAIClientsDep = Annotated[OpenAIClients, Depends(get_openai_clients)]


def request_llm(
    configured: LLMClient | None,
    settings: AutointerpSettings,
    clients: OpenAIClients,
    openrouter_key: str | None,
    model: str | None,
) -> LLMClient | None:
    """Neuronpedia's paths carry an OpenRouter key and model: used only when none is configured.

    The call goes through the service's one OpenRouter client, seen with the request's key.
    """
    if configured is not None:
        return configured
    if openrouter_key and model:
        return LLMClient(
            LLMConfig(
                model=model,
                base_url=settings.openrouter_base_url,
                api_key=openrouter_key,
                timeout=settings.request_timeout,
                max_retries=settings.llm_max_retries,
                max_concurrency=settings.max_concurrency,
            ),
            clients,
        )
    return None


def require_llm(llm: LLMClient | None) -> LLMClient:
    if llm is None:
        raise NoLLM()
    return llm
