"""Generating and scoring explanations through the autointerp service, and storing them."""

from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_clients.autointerp import AsyncAutointerpClient
from interpedia_clients.autointerp import models as autointerp
from interpedia_core.errors import NotFound, UpstreamError
from interpedia_db.models import Explanation, ExplanationScore, User
from interpedia_webapi import dashboards
from interpedia_webapi.upstream import upstream_errors

EXAMPLES = 20


def _examples(dashboard: dashboards.Dashboard) -> list[autointerp.NPActivation]:
    return [
        autointerp.NPActivation(tokens=a.tokens, values=a.values)
        for a in dashboard.activations[:EXAMPLES]
    ]


async def generate_explanation(
    session: AsyncSession,
    client: AsyncAutointerpClient,
    model_id: str,
    source_id: str,
    index: int,
    *,
    type_name: str,
    explainer_model: str | None,
    author: User | None,
) -> Explanation:
    dashboard = await dashboards.get_dashboard(session, model_id, source_id, index)
    if not dashboard.activations:
        raise NotFound(f"feature {model_id}/{source_id}/{index} has no examples to explain")
    async with upstream_errors(client, session):
        answer = await client.explain_default(
            autointerp.ExplainDefaultRequest(
                activations=_examples(dashboard), model=explainer_model
            )
        )
    text = answer.explanation
    if not text.strip():
        raise UpstreamError("the autointerp service returned an empty explanation")
    explanation = Explanation(
        model_id=model_id,
        source_id=source_id,
        index=index,
        description=text.strip()[:2000],
        type_name=type_name,
        explanation_model_name=explainer_model,
        author_id=author.id if author else None,
    )
    session.add(explanation)
    await session.flush()
    return explanation


async def score_explanation(
    session: AsyncSession,
    client: AsyncAutointerpClient,
    explanation_id: int,
    *,
    scorer_model: str | None,
) -> ExplanationScore:
    explanation = await session.get(Explanation, explanation_id)
    if explanation is None:
        raise NotFound(f"no explanation {explanation_id}")
    dashboard = await dashboards.get_dashboard(
        session, explanation.model_id, explanation.source_id, explanation.index
    )
    async with upstream_errors(client, session):
        answer = await client.score_embedding(
            autointerp.ScoreEmbeddingRequest(
                activations=_examples(dashboard), explanation=explanation.description
            )
        )
    score = ExplanationScore(
        explanation_id=explanation.id,
        type_name="embedding",
        value=answer.score,
        scorer_model=scorer_model,
        details={"breakdown": [b.model_dump() for b in answer.breakdown]},
    )
    session.add(score)
    await session.flush()
    return score
