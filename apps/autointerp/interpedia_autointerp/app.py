"""The autointerp service: `create_app(settings)` wires settings, models and routers.

Construction is cheap; the lifespan loads the embedding model in the background
(`/health` answers 503 until it is ready) and connects to the database.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from interpedia_autointerp.embeddings import EmbedderRegistry
from interpedia_autointerp.llm import OpenAIClients
from interpedia_autointerp.resources import build_embedders, build_llm
from interpedia_autointerp.routes import embed, explain, score, search
from interpedia_autointerp.settings import AutointerpSettings
from interpedia_core.service import create_service_app
from interpedia_db.connect import open_database

logger = logging.getLogger(__name__)


def _log_failure(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("autointerp failed to start; /health stays 503", exc_info=task.exception())


def create_app(
    settings: AutointerpSettings | None = None, *, embedders: EmbedderRegistry | None = None
) -> FastAPI:
    """The service; pass `embedders` to reuse an already-loaded model (tests, the CLI)."""
    settings = settings or AutointerpSettings()

    async def load(app: FastAPI, resources: contextlib.AsyncExitStack) -> None:
        if settings.database_enabled:
            database = await resources.enter_async_context(open_database(settings))
            app.state.sessionmaker = database.sessionmaker
        app.state.embedders = embedders or await asyncio.to_thread(
            build_embedders, settings, app.state.openai_clients
        )
        app.state.ready = True
        logger.info("autointerp ready (embedding model %s)", settings.embedding_model)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as resources:
            # One SDK client per OpenAI-compatible API root, closed last (see llm.py).
            app.state.openai_clients = OpenAIClients()
            resources.push_async_callback(app.state.openai_clients.aclose)
            app.state.llm = build_llm(settings, app.state.openai_clients)
            app.state.sessionmaker = None
            loading = asyncio.create_task(load(app, resources))
            loading.add_done_callback(_log_failure)
            try:
                yield
            finally:
                if not loading.done():
                    loading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loading

    app = create_service_app(
        title="Interpedia autointerp",
        description="Explanations, scores, embeddings and explanation search.",
        lifespan=lifespan,
        secret=settings.secret,
    )
    app.state.settings = settings
    app.state.llm = None
    app.state.sessionmaker = None
    for module in (explain, score, embed, search):
        app.include_router(module.router)
    return app
