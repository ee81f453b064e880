"""The inference app: wiring only. The model and SAEs load in the background after the port
opens; /health answers 503 until they are ready. POST /initialize may later swap in another
model (`initialization`)."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from interpedia_core.errors import InvalidInput
from interpedia_core.service import create_service_app, error_responses
from interpedia_inference.deps import StillLoading
from interpedia_inference.engine import build_engine
from interpedia_inference.routes import (
    activation,
    capabilities,
    chat_template,
    initialize,
    lens,
    steer,
    tokenize,
    util,
)
from interpedia_inference.settings import InferenceSettings

logger = logging.getLogger(__name__)


async def _load(app: FastAPI, settings: InferenceSettings) -> None:
    try:
        engine = await asyncio.to_thread(build_engine, settings)
    except Exception:  # keep serving /health (503) and say why in the log
        logger.exception("loading the model or SAEs failed")
        app.state.load_error = "loading failed; see the server log"
        return
    engine.batcher.start()
    app.state.engine = engine
    app.state.ready = True
    logger.info(
        "inference ready: %s with sources %s",
        engine.model.model_id,
        sorted(engine.registry.specs),
    )


def create_app(settings: InferenceSettings | None = None) -> FastAPI:
    """Build the app (cheap: nothing loads until the lifespan starts)."""
    settings = settings or InferenceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_load(app, settings))
        app.state.load_task = task
        try:
            yield
        finally:
            task.cancel()
            engines = [app.state.engine, *app.state.retiring]
            for retiring in list(app.state.retiring.values()):
                retiring.cancel()
            for engine in engines:
                if engine is not None:
                    await engine.batcher.stop()

    app = create_service_app(
        title="Interpedia inference",
        description=(
            "Activations, top features and steered completions for one language model and "
            "its SAEs. Paths and fields follow Neuronpedia's inference server."
        ),
        lifespan=lifespan,
        secret=settings.secret,
        wire_dialect=settings.wire_dialect,
    )
    app.state.settings = settings
    app.state.engine = None
    app.state.load_task = None
    app.state.load_error = None
    # What the serving engine was built from, one /initialize switch at a time, and the
    # replaced engines still finishing their requests.
    app.state.serving_settings = settings
    app.state.switch_lock = asyncio.Lock()
    app.state.retiring = {}
    # Every route checks the model name (400) and needs the loaded model (503).
    v1 = APIRouter(prefix="/v1", responses=error_responses(InvalidInput, StillLoading))
    for module in (activation, capabilities, chat_template, lens, steer, tokenize, util):
        v1.include_router(module.router)
    app.include_router(v1)
    app.include_router(initialize.router)
    return app
