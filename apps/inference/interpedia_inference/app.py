"""The inference app: wiring only. The model and SAEs load in the background after the port
opens; /health answers 503 until they are ready."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from interpedia_core.service import create_service_app
from interpedia_inference.engine import build_engine
from interpedia_inference.routes import activation, capabilities, steer, tokenize, util
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
            engine = getattr(app.state, "engine", None)
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
    )
    app.state.settings = settings
    app.state.engine = None
    v1 = APIRouter(prefix="/v1")
    for module in (activation, capabilities, steer, tokenize, util):
        v1.include_router(module.router)
    app.include_router(v1)
    return app
