"""POST /v1/explain/default (Neuronpedia), /v1/explain/activations, /v1/explain/feature."""

from collections.abc import Sequence

from fastapi import APIRouter

from interpedia_autointerp import explain as explainers
from interpedia_autointerp import storage
from interpedia_autointerp.deps import (
    EmbeddersDep,
    LLMDep,
    OpenAIClientsDep,
    SessionDep,
    SettingsDep,
    request_llm,
    require_llm,
)
from interpedia_autointerp.examples import ActivationRecord, records_from
from interpedia_autointerp.llm import LLMClient
from interpedia_autointerp.schemas.common import NPActivation
from interpedia_autointerp.schemas.explain import (
    ExplainActivationsRequest,
    ExplainActivationsResponse,
    ExplainDefaultRequest,
    ExplainDefaultResponse,
    ExplainFeatureRequest,
    ExplainFeatureResponse,
    ExplainMethod,
)

router = APIRouter(prefix="/v1/explain", tags=["explain"])


def to_records(activations: Sequence[NPActivation]) -> list[ActivationRecord]:
    return records_from([(a.tokens, a.values) for a in activations])


async def _explain(
    method: ExplainMethod,
    llm: LLMClient | None,
    records: list[ActivationRecord],
    logit_tokens: Sequence[str] = (),
) -> explainers.GeneratedExplanation:
    if method == "llm" or (method == "auto" and llm is not None):
        return await explainers.llm_explanation(require_llm(llm), records, logit_tokens)
    return explainers.offline_explanation(records, logit_tokens)


@router.post("/default", response_model=ExplainDefaultResponse)
async def explain_default(
    body: ExplainDefaultRequest, llm: LLMDep, settings: SettingsDep, clients: OpenAIClientsDep
) -> ExplainDefaultResponse:
    """Neuronpedia's explainer: the LLM when there is one, else the offline explainer."""
    client = request_llm(llm, settings, clients, body.openrouter_key, body.model)
    result = await _explain("auto", client, to_records(body.activations))
    return ExplainDefaultResponse(explanation=result.description)


@router.post("/activations", response_model=ExplainActivationsResponse)
async def explain_activations(
    body: ExplainActivationsRequest, llm: LLMDep
) -> ExplainActivationsResponse:
    """Explain the given examples (and logit-lens tokens) with the chosen explainer."""
    result = await _explain(body.method, llm, to_records(body.activations), body.logit_tokens)
    return ExplainActivationsResponse(
        description=result.description,
        type_name=result.type_name,
        explanation_model_name=result.explanation_model_name,
    )


@router.post("/feature", response_model=ExplainFeatureResponse)
async def explain_feature(
    body: ExplainFeatureRequest, llm: LLMDep, session: SessionDep, embedders: EmbeddersDep
) -> ExplainFeatureResponse:
    """Explain a stored feature from its stored examples; store it with its embedding."""
    async with session.begin():
        examples = await storage.load_feature_examples(
            session, body.model_id, body.source_id, body.index
        )
    result = await _explain(body.method, llm, examples.records, examples.logit_tokens)
    explanation_id = None
    if body.store:
        async with session.begin():
            row = await storage.store_explanation(
                session, body.model_id, body.source_id, body.index, result
            )
            await storage.store_embeddings(session, embedders.get(), [row])
            explanation_id = row.id
    return ExplainFeatureResponse(
        explanation_id=explanation_id,
        description=result.description,
        type_name=result.type_name,
        explanation_model_name=result.explanation_model_name,
    )
