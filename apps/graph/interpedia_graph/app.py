"""The graph service: wiring only.

The database and the queue open in the lifespan, the tokenizer loads in the background
(/health answers 503 until it has); the replacement model is built on the first request
that runs the model (`/forward-pass`, `/steer`), since queuing graphs and reading stored
ones need only the tokenizer. Graphs themselves are made by graph workers (`jobs.py`).
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from interpedia_core.service import create_service_app
from interpedia_db.connect import create_engine, create_sessionmaker, resolve_database_url
from interpedia_graph.replacement import ReplacementModels, load_tokenizer
from interpedia_graph.routes import graphs, neuronpedia
from interpedia_graph.settings import GraphSettings
from interpedia_jobs.queue import create_job_app

logger = logging.getLogger(__name__)


async def _load_tokenizer(app: FastAPI, settings: GraphSettings) -> None:
    try:
        app.state.tokenizer = await asyncio.to_thread(load_tokenizer, settings.model_id)
    except Exception:  # keep serving /health (503) and say why in the log
        logger.exception("loading the tokenizer of %s failed", settings.model_id)
        return
    app.state.ready = True


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: GraphSettings = app.state.settings
    database_url = await asyncio.to_thread(resolve_database_url, settings)
    engine = create_engine(database_url)
    app.state.sessionmaker = create_sessionmaker(engine)
    app.state.job_app = create_job_app(database_url, load_tasks=False)
    app.state.models = ReplacementModels(settings.device)
    app.state.model_lock = asyncio.Lock()
    load = asyncio.create_task(_load_tokenizer(app, settings))
    try:
        async with app.state.job_app.open_async():
            yield
    finally:
        load.cancel()
        await engine.dispose()


def create_app(settings: GraphSettings | None = None) -> FastAPI:
    settings = settings or GraphSettings()
    app = create_service_app(
        title="Interpedia graph",
        description="Attribution graphs of a model's transcoders with circuit-tracer: "
        "Neuronpedia's graph-server routes, plus graph jobs and stored graphs under /v1.",
        lifespan=lifespan,
        secret=settings.secret,
    )
    app.state.settings = settings
    app.include_router(neuronpedia.router)
    app.include_router(graphs.router, prefix="/v1")
    return app
