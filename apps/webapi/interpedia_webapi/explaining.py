"""Generating and scoring explanations through the autointerp service, and storing them."""

from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import NotFound, UpstreamError
from interpedia_db.models import Explanation, ExplanationScore, User
from interpedia_webapi import dashboards
from interpedia_webapi.upstream import AutointerpClient, call

EXAMPLES = 20


def _examples(dashboard: dashboards.Dashboard) -> list[dict[str, list]]:
    return [{"tokens": a.tokens, "values": a.values} for a in dashboard.activations[:EXAMPLES]]


async def generate_explanation(
    session: AsyncSession,
    client: AutointerpClient,
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
    answer = await call(
        client, "explain_default", {"activations": _examples(dashboard), "model": explainer_model}
    )
    text = (answer or {}).get("explanation") if isinstance(answer, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise UpstreamError("the autointerp service returned no explanation")
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
    client: AutointerpClient,
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
    answer = await call(
        client,
        "score_embedding",
        {"activations": _examples(dashboard), "explanation": explanation.description},
    )
    value = answer.get("score") if isinstance(answer, dict) else None
    if not isinstance(value, int | float):
        raise UpstreamError("the autointerp service returned no score")
    score = ExplanationScore(
        explanation_id=explanation.id,
        type_name="embedding",
        value=float(value),
        scorer_model=scorer_model,
        details={"breakdown": answer.get("breakdown")},
    )
    session.add(score)
    await session.flush()
    return score
