"""Similar features across sources of one model (Neuronpedia's `/api/cossim`): the target
source's features whose decoder rows point most nearly the same way as a feature's row or a
custom vector's values, as the inference service that holds the target SAE computes them."""

from interpedia_clients.inference import models as inference
from interpedia_core.errors import InvalidInput, NotFound
from interpedia_webapi import dashboards, vectors, visibility
from interpedia_webapi.deps import OptionalUser, SessionDep, UpstreamsDep
from interpedia_webapi.routes import upstream_router
from interpedia_webapi.schemas import CossimRequest, CossimResponse, parse_index
from interpedia_webapi.upstream import upstream_errors

router = upstream_router("similar features", NotFound)


@router.post("/cossim")
async def cossim(
    body: CossimRequest, session: SessionDep, upstreams: UpstreamsDep, viewer: OptionalUser
) -> CossimResponse:
    """The ten features of `targetSourceId` nearest to the feature by decoder cosine (404
    for a feature or target source the caller may not see)."""
    if body.targetModelId != body.modelId:
        raise InvalidInput("similar features are looked up among sources of the same model")
    index = parse_index(body.index)
    dashboard = await dashboards.get_dashboard(session, body.modelId, body.source, index, 0)
    await visibility.visible_dashboard(session, dashboard, viewer)
    await visibility.require_source(session, body.targetModelId, body.targetSourceId, viewer)
    values = await vectors.decoder_direction(session, body.modelId, body.source, index)
    client = upstreams.inference(body.targetModelId)
    request = inference.UtilSaeTopkByDecoderCossimRequest(
        model=body.targetModelId,
        source=body.targetSourceId,
        num_results=10,
        **(
            {"vector": values}
            if values is not None
            else {
                "feature": inference.FeatureRef(model=body.modelId, source=body.source, index=index)
            }
        ),
    )
    async with upstream_errors(client, session):
        answer = await client.util_sae_topk_by_decoder_cossim(request)
    return CossimResponse.model_validate(answer.model_dump())
