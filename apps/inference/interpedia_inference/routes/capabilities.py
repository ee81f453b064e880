"""GET /v1/capabilities: what this server serves, so callers can route and hide the rest."""

from fastapi import APIRouter

from interpedia_inference.deps import EngineDep
from interpedia_inference.schemas.activation import MAX_NUM_RESULTS, RAW_MAX_PROMPTS
from interpedia_inference.schemas.capabilities import CapabilitiesResponse
from interpedia_inference.schemas.steer import SteerMethod

router = APIRouter(tags=["capabilities"])

# Neuronpedia's `endpoints` keys, and whether this server serves each.
ENDPOINTS = {
    "tokenize": True,
    "activation_single": True,
    "activation_all": True,
    "activation_source": True,
    "activation_raw": True,
    "activation_topk_by_token": True,
    "activation_attention": True,
    "dfa": True,
    "steer_completion": True,
    "steer_completion_chat": True,
    "apply_chat_template": True,
    "lens_logit": True,
    "lens_jacobian": False,
    "neurons": True,
}


@router.get("/capabilities", response_model=CapabilitiesResponse)
async def capabilities(engine: EngineDep) -> CapabilitiesResponse:
    """What this server serves: model, limits, hook points, sources, endpoints.

    503 while loading."""
    model = engine.model
    limit = engine.limits.token_limit
    return CapabilitiesResponse(
        model=model.model_id,
        model_names=sorted(engine.model_names),
        backend="transformer_lens",
        device=model.device,
        dtype=str(model.dtype).removeprefix("torch."),
        num_layers=model.n_layers,
        n_heads=model.n_heads,
        d_model=model.d_model,
        token_limit=limit,
        activation_token_limit=limit,
        lens_token_limit=limit,
        max_completion_tokens=engine.limits.max_completion_tokens,
        max_num_results=MAX_NUM_RESULTS,
        max_raw_prompts=RAW_MAX_PROMPTS,
        hook_points=engine.block_hook_points(),
        steer_methods=[m.value for m in SteerMethod],
        sae_sets=sorted(engine.registry.source_sets()),
        sources=sorted(engine.registry.specs),
        endpoints={**ENDPOINTS, "apply_chat_template": model.instruct},
    )
