"""POST /v1/util/*: decoder vectors and nearest features by decoder cosine."""

import torch
from fastapi import APIRouter

from interpedia_core.errors import InvalidInput, NotFound
from interpedia_core.service import error_responses
from interpedia_inference.deps import EngineDep
from interpedia_inference.schemas.util import (
    CossimFeature,
    FeatureRef,
    UtilSaeTopkByDecoderCossimRequest,
    UtilSaeTopkByDecoderCossimResponse,
    UtilSaeVectorRequest,
    UtilSaeVectorResponse,
)

router = APIRouter(prefix="/util", tags=["util"], responses=error_responses(NotFound))

MAX_COSSIM_RESULTS = 128


@router.post("/sae-vector", response_model=UtilSaeVectorResponse, response_model_by_alias=True)
async def util_sae_vector(body: UtilSaeVectorRequest, engine: EngineDep) -> UtilSaeVectorResponse:
    """A feature's decoder direction and the hook it lives at (a transcoder's output hook),
    so a caller that steers with the vector (the webapi) adds it where the feature writes."""
    engine.check_model(body.model)
    sae = await engine.sae(body.source)
    vector = sae.decoder_vector(body.index)
    return UtilSaeVectorResponse(vector=vector.float().cpu().tolist(), hookName=sae.steer_hook)


@router.post(
    "/sae-topk-by-decoder-cossim",
    response_model=UtilSaeTopkByDecoderCossimResponse,
    response_model_exclude_none=True,
)
async def util_sae_topk_by_decoder_cossim(
    body: UtilSaeTopkByDecoderCossimRequest, engine: EngineDep
) -> UtilSaeTopkByDecoderCossimResponse:
    """The source's features whose decoder rows are most cosine-similar to a feature or vector."""
    engine.check_model(body.model)
    sae = await engine.sae(body.source)
    if (body.feature is None) == (body.vector is None):
        raise InvalidInput("give exactly one of feature or vector")
    if body.feature is not None:
        engine.check_model(body.feature.model)
        query = (await engine.sae(body.feature.source)).decoder_vector(body.feature.index)
        query = query.float().cpu()
        if query.numel() != sae.d_in:
            raise InvalidInput(
                f"feature has d={query.numel()}; source {sae.source_id} has {sae.d_in}"
            )
    else:
        query = engine.check_vector(body.vector or [], sae.d_in, "vector")
    w_dec = sae.W_dec.float().cpu()  # [d_sae, d_in]
    sims = torch.nn.functional.cosine_similarity(w_dec, query.unsqueeze(0), dim=-1)  # [d_sae]
    k = min(body.num_results, MAX_COSSIM_RESULTS, sae.d_sae)
    values, indices = torch.topk(sims, k)
    return UtilSaeTopkByDecoderCossimResponse(
        feature=body.feature,
        topk_decoder_cossim_features=[
            CossimFeature(
                feature=FeatureRef(model=body.model, source=sae.source_id, index=int(i)),
                cosine_similarity=float(v),
            )
            for v, i in zip(values.tolist(), indices.tolist(), strict=True)
        ],
    )
