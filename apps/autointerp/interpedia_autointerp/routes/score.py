"""POST /v1/score/embedding, /v1/score/fuzz-detection (Neuronpedia), /simulation, /explanation."""

import dataclasses

from fastapi import APIRouter

from interpedia_autointerp import scoring, storage
from interpedia_autointerp.deps import (
    EmbeddersDep,
    LLMDep,
    OpenAIClientsDep,
    SessionDep,
    SettingsDep,
    request_llm,
    require_llm,
)
from interpedia_autointerp.embeddings import EmbedderRegistry
from interpedia_autointerp.examples import ActivationRecord
from interpedia_autointerp.llm import LLMClient
from interpedia_autointerp.routes.explain import to_records
from interpedia_autointerp.schemas.score import (
    ScoreEmbeddingBreakdown,
    ScoreEmbeddingRequest,
    ScoreEmbeddingResponse,
    ScoreExplanationRequest,
    ScoreExplanationResponse,
    ScoreFuzzDetectionBreakdown,
    ScoreFuzzDetectionRequest,
    ScoreFuzzDetectionResponse,
    ScorerName,
    ScoreSimulationBreakdown,
    ScoreSimulationRequest,
    ScoreSimulationResponse,
    StoredScore,
)

router = APIRouter(prefix="/v1/score", tags=["score"])


@router.post("/embedding", response_model=ScoreEmbeddingResponse)
async def score_embedding(
    body: ScoreEmbeddingRequest, embedders: EmbeddersDep
) -> ScoreEmbeddingResponse:
    """ROC-AUC of explanation–example similarity, activating vs non-activating (CPU)."""
    result = await scoring.embedding_score(
        embedders.get(body.embedding_model), body.explanation, to_records(body.activations)
    )
    return ScoreEmbeddingResponse(
        score=result.value,
        breakdown=[
            ScoreEmbeddingBreakdown(text=b.text, distance=b.distance, similarity=b.similarity)
            for b in result.breakdown
        ],
    )


@router.post("/fuzz-detection", response_model=ScoreFuzzDetectionResponse)
async def score_fuzz_detection(
    body: ScoreFuzzDetectionRequest,
    llm: LLMDep,
    settings: SettingsDep,
    clients: OpenAIClientsDep,
) -> ScoreFuzzDetectionResponse:
    """Neuronpedia's LLM-judge scorers: balanced accuracy of detection or fuzzing."""
    client = require_llm(request_llm(llm, settings, clients, body.openrouter_key, body.model))
    scorer = scoring.fuzzing_score if body.type == "FUZZ" else scoring.detection_score
    result = await scorer(client, body.explanation, to_records(body.activations))
    return ScoreFuzzDetectionResponse(
        score=result.value,
        breakdown=[ScoreFuzzDetectionBreakdown(**dataclasses.asdict(b)) for b in result.breakdown],
    )


@router.post("/simulation", response_model=ScoreSimulationResponse)
async def score_simulation(body: ScoreSimulationRequest, llm: LLMDep) -> ScoreSimulationResponse:
    """Correlation of the LLM's simulated activations (0–10 per token) with the true ones."""
    result = await scoring.simulation_score(
        require_llm(llm), body.explanation, to_records(body.activations)
    )
    return ScoreSimulationResponse(
        score=result.value,
        breakdown=[ScoreSimulationBreakdown(**dataclasses.asdict(b)) for b in result.breakdown],
    )


async def run_scorer(
    name: ScorerName,
    explanation: str,
    records: list[ActivationRecord],
    embedders: EmbedderRegistry,
    llm: LLMClient | None,
) -> scoring.ScoreResult:
    if name == "embedding":
        return await scoring.embedding_score(embedders.get(), explanation, records)
    judge = {
        "detection": scoring.detection_score,
        "fuzz": scoring.fuzzing_score,
        "simulation": scoring.simulation_score,
    }[name]
    return await judge(require_llm(llm), explanation, records)


@router.post("/explanation", response_model=ScoreExplanationResponse)
async def score_explanation(
    body: ScoreExplanationRequest, session: SessionDep, embedders: EmbeddersDep, llm: LLMDep
) -> ScoreExplanationResponse:
    """Score a stored explanation against its feature's stored examples; store the scores."""
    async with session.begin():
        explanation = await storage.get_explanation(session, body.explanation_id)
        examples = await storage.load_feature_examples(
            session, explanation.model_id, explanation.source_id, explanation.index
        )
    results = [
        await run_scorer(name, explanation.description, examples.records, embedders, llm)
        for name in dict.fromkeys(body.scorers)
    ]
    async with session.begin():
        rows = [await storage.store_score(session, explanation.id, r) for r in results]
    return ScoreExplanationResponse(
        explanation_id=explanation.id,
        scores=[
            StoredScore(
                id=row.id,
                type_name=row.type_name,
                value=row.value,
                scorer_model=row.scorer_model,
                details=row.details,
            )
            for row in rows
        ],
    )
