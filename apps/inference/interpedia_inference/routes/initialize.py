"""POST /initialize (Neuronpedia's path, outside /v1): wait for the model and SAEs, or load
another model (and its sources) in place of the served one (`initialization`)."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request

from interpedia_core.errors import InvalidInput
from interpedia_core.service import error_responses
from interpedia_inference import initialization
from interpedia_inference.deps import StillLoading
from interpedia_inference.schemas.capabilities import InitializeRequest, InitializeResponse

router = APIRouter(tags=["initialize"], responses=error_responses(InvalidInput, StillLoading))


@router.post("/initialize", response_model=InitializeResponse)
async def initialize(
    request: Request,
    custom_hf_model_id: Annotated[str | None, Query(min_length=1, max_length=1000)] = None,
    body: InitializeRequest | None = None,
) -> InitializeResponse:
    """Wait until the model and SAEs are loaded, or load another model or other sources.

    Another model is named by `custom_hf_model_id` (Neuronpedia's) or `model_id`; it and
    its sources are then served instead of the current ones.

    Requests already running finish on the old model; a load that fails leaves it serving
    (400 with the reason). 503 if the startup load failed and nothing else was asked for."""
    state = request.app.state
    if state.engine is None and state.load_task is not None:
        await asyncio.shield(state.load_task)
    async with state.switch_lock:
        target = initialization.target_settings(
            state.serving_settings, state.engine, custom_hf_model_id, body
        )
        if target is not None:
            engine = await asyncio.to_thread(initialization.load_engine, target)
            engine.batcher.start()
            old, state.engine, state.serving_settings = state.engine, engine, target
            state.ready, state.load_error = True, None
            if old is not None:
                task = asyncio.create_task(initialization.retire(old))
                state.retiring[old] = task
                task.add_done_callback(lambda _: state.retiring.pop(old, None))
    engine = state.engine
    if engine is None:
        raise StillLoading(state.load_error or "the model is not loaded")
    return InitializeResponse(
        status="initialized", model=engine.model.model_id, sources=sorted(engine.registry.specs)
    )
