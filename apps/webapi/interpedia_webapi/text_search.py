"""Which features fire on a text: asks the inference service, answers in Neuronpedia's shape.

`/api/search-all` ranks a source set's features over the text; `/api/search-topk-by-token`
lists each token's top features of one source, with what the database knows of each
(density, max activation, first explanation), filtered by density as Neuronpedia does.
"""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_clients.inference import AsyncInferenceClient
from interpedia_clients.inference import models as inference
from interpedia_db.models import Explanation, Feature
from interpedia_webapi.schemas import (
    SearchAllResponse,
    SearchAllResult,
    SearchTopkByTokenResponse,
    TopkFeature,
    TopkFeatureInfo,
    TopkTokenResult,
)
from interpedia_webapi.upstream import upstream_errors


async def search_all(
    session: AsyncSession, client: AsyncInferenceClient, request: inference.ActivationAllRequest
) -> SearchAllResponse:
    async with upstream_errors(client, session):
        answer = await client.activation_all(request)
    return SearchAllResponse(
        result=[
            SearchAllResult(
                modelId=request.model,
                layer=a.source,
                index=str(a.index),
                values=a.values,
                maxValue=a.max_value,
                maxValueTokenIndex=a.max_value_index,
                sumValues=a.sum_values,
            )
            for a in answer.activations
        ],
        tokens=answer.tokens,
        counts=answer.counts,
    )


async def topk_by_token(
    session: AsyncSession,
    client: AsyncInferenceClient,
    request: inference.ActivationTopkByTokenBatchRequest,
) -> list[inference.ActivationTopkByTokenResponse]:
    """Each text's per-token top features, in one batched call."""
    async with upstream_errors(client, session):
        answer = await client.activation_topk_by_token_batch(request)
    return answer.results


def by_token(
    source_id: str,
    answer: inference.ActivationTopkByTokenResponse,
    features: dict[int, TopkFeatureInfo] | None = None,
) -> SearchTopkByTokenResponse:
    features = features or {}
    return SearchTopkByTokenResponse(
        source=source_id,
        results=[
            TopkTokenResult(
                position=r.token_position,
                token=r.token,
                isSpecial=r.is_special,
                topFeatures=[
                    TopkFeature(
                        featureIndex=f.feature_index,
                        activationValue=f.activation_value,
                        feature=features.get(f.feature_index),
                    )
                    for f in r.top_features
                ],
            )
            for r in answer.results
        ],
    )


async def feature_details(
    session: AsyncSession,
    model_id: str,
    source_id: str,
    answer: inference.ActivationTopkByTokenResponse,
) -> dict[int, TopkFeatureInfo]:
    """What the database holds on every feature in the answer (two queries in all)."""
    indices = {f.feature_index for r in answer.results for f in r.top_features}
    if not indices:
        return {}
    in_source = (Feature.model_id == model_id, Feature.source_id == source_id)
    rows = await session.execute(
        select(Feature.index, Feature.frac_nonzero, Feature.max_act).where(
            *in_source, Feature.index.in_(indices)
        )
    )
    stats = {i: (frac, top) for i, frac, top in rows.all()}
    descriptions: dict[int, str] = {}
    for index, description in await session.execute(
        select(Explanation.index, Explanation.description)
        .where(
            Explanation.model_id == model_id,
            Explanation.source_id == source_id,
            Explanation.index.in_(stats),
        )
        .order_by(Explanation.id)
    ):
        descriptions.setdefault(index, description)
    return {
        i: TopkFeatureInfo(
            modelId=model_id,
            layer=source_id,
            index=str(i),
            frac_nonzero=frac,
            maxActApprox=top,
            description=descriptions.get(i),
        )
        for i, (frac, top) in stats.items()
    }


def keep(
    response: SearchTopkByTokenResponse, ignore_special: bool, density_threshold: float
) -> SearchTopkByTokenResponse:
    """Neuronpedia's filters: special tokens out (EOS survives `ignore_bos`), and with a
    threshold only features known to fire on at most that fraction of tokens."""
    results = [r for r in response.results if not (ignore_special and r.isSpecial)]
    if density_threshold > 0:
        for r in results:
            r.topFeatures = [
                f
                for f in r.topFeatures
                if f.feature is not None
                and f.feature.frac_nonzero
                and f.feature.frac_nonzero <= density_threshold
            ]
    return SearchTopkByTokenResponse(source=response.source, results=results)
