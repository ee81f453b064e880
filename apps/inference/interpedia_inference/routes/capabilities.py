"""GET /v1/capabilities: what this server serves, so callers can route and hide the rest."""

from fastapi import APIRouter

from interpedia_inference.deps import EngineDep
from interpedia_inference.schemas.capabilities import CapabilitiesResponse

router = APIRouter(tags=["capabilities"])


@router.get("/capabilities", response_model=CapabilitiesResponse)
async def capabilities(engine: EngineDep) -> CapabilitiesResponse:
    """The served model (and its other names), limits and SAE sources; 503 while loading."""
    return CapabilitiesResponse(
        model=engine.model.model_id,
        model_names=sorted(engine.model_names),
        device=engine.model.device,
        token_limit=engine.limits.token_limit,
        max_completion_tokens=engine.limits.max_completion_tokens,
        sae_sets=sorted(engine.registry.source_sets()),
        sources=sorted(engine.registry.specs),
    )
