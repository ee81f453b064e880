"""POST /initialize (Neuronpedia's path, outside /v1): make sure the model and SAEs are loaded.

The model and SAEs load when the server starts; this waits for that load, so a caller
(Neuronpedia's webapp, a deploy script) can block until the server is ready. One server
serves one model: asking for another is a 409 naming the one served.
"""

import asyncio

from fastapi import APIRouter, Request

from interpedia_core.errors import Conflict
from interpedia_core.service import error_responses
from interpedia_inference.deps import StillLoading
from interpedia_inference.schemas.capabilities import InitializeResponse

router = APIRouter(tags=["initialize"], responses=error_responses(Conflict, StillLoading))


@router.post("/initialize", response_model=InitializeResponse)
async def initialize(request: Request, custom_hf_model_id: str | None = None) -> InitializeResponse:
    """Wait until the model and SAEs are loaded (503 if loading failed)."""
    state = request.app.state
    task = getattr(state, "load_task", None)
    if state.engine is None and task is not None:
        await asyncio.shield(task)
    engine = state.engine
    if engine is None:
        raise StillLoading(getattr(state, "load_error", None) or "the model is not loaded")
    if custom_hf_model_id and custom_hf_model_id not in engine.model_names:
        raise Conflict(
            f"this server serves {engine.model.model_id!r}; start one with "
            f"MODEL_ID={custom_hf_model_id} to serve that model"
        )
    return InitializeResponse(
        status="initialized", model=engine.model.model_id, sources=sorted(engine.registry.specs)
    )
