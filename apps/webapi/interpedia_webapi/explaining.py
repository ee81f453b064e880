"""Explanations as records: generated (autointerp), written by people, scored, voted, exported.

Generating asks autointerp with the explainer the caller named and stores the type and
model autointerp says really wrote the text, so an offline explanation is never filed
under an LLM explainer's name. Scoring runs the scorer the caller named; Neuronpedia's
scorer names map onto ours (`SCORER_NAMES`), and the ones with no counterpart here are
refused with a message that lists what is available. Only the author or an admin may
delete an explanation; anyone with a key may vote, once per explanation.
"""

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from interpedia_clients.autointerp import AsyncAutointerpClient
from interpedia_clients.autointerp import models as autointerp
from interpedia_core.errors import Forbidden, InvalidInput, NotFound, UpstreamError
from interpedia_db.models import Explanation, ExplanationScore, ExplanationVote, Feature, User
from interpedia_webapi import dashboards
from interpedia_webapi.upstream import upstream_errors

EXAMPLES = 20
HUMAN_TYPE_NAME = "human"  # an explanation a person wrote (`explanation/new`)

# Explainer names a caller may give → autointerp's method. Neuronpedia's LLM explainer
# types all mean "an LLM"; autointerp answers which type and model really wrote the text.
EXPLAINER_METHODS: dict[str, autointerp.Method1] = {
    "auto": autointerp.Method1.auto,
    "offline": autointerp.Method1.offline,
    "interpedia-offline-v2": autointerp.Method1.offline,
    "llm": autointerp.Method1.llm,
    "interpedia-llm-v1": autointerp.Method1.llm,
    "oai_token-act-pair": autointerp.Method1.llm,
    "eleuther_acts_top20": autointerp.Method1.llm,
    "np_max-act-logits": autointerp.Method1.llm,
    "np_max-act": autointerp.Method1.llm,
}

# Scorer names a caller may give → ours (autointerp's scorers).
SCORER_NAMES = {
    "embedding": "embedding",
    "eleuther_embedding": "embedding",
    "fuzz": "fuzz",
    "eleuther_fuzz": "fuzz",
    "detection": "detection",
    "eleuther_recall": "detection",  # EleutherAI's "recall" is detection
    "simulation": "simulation",
}
# Neuronpedia's scorers with no counterpart here, and why.
UNAVAILABLE_SCORERS = {
    "recall_alt": "recall_alt (Neuronpedia's own LLM recall prompt) is not available here; "
    "eleuther_recall (detection) is the closest",
}


def explainer_method(name: str | None) -> autointerp.Method1:
    if name is None:
        return autointerp.Method1.auto
    try:
        return EXPLAINER_METHODS[name]
    except KeyError:
        known = ", ".join(EXPLAINER_METHODS)
        raise InvalidInput(f"unknown explainer {name!r}; use one of {known}") from None


def scorer_name(name: str) -> str:
    if name in UNAVAILABLE_SCORERS:
        raise InvalidInput(UNAVAILABLE_SCORERS[name])
    try:
        return SCORER_NAMES[name]
    except KeyError:
        known = ", ".join(SCORER_NAMES)
        raise InvalidInput(f"unknown scorer {name!r}; use one of {known}") from None


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
    explainer: str | None,
    author: User | None,
) -> Explanation:
    """Explain the feature with `explainer` (see `EXPLAINER_METHODS`) and store the text
    under the type and model autointerp reports."""
    method = explainer_method(explainer)
    dashboard = await dashboards.get_dashboard(session, model_id, source_id, index)
    if not dashboard.activations:
        raise NotFound(f"feature {model_id}/{source_id}/{index} has no examples to explain")
    async with upstream_errors(client, session):
        answer = await client.explain_activations(
            autointerp.ExplainActivationsRequest(
                activations=_examples(dashboard),
                logit_tokens=list(dashboard.feature.pos_str or []),
                method=method,
            )
        )
    text = answer.description.strip()
    if not text:
        raise UpstreamError("the autointerp service returned an empty explanation")
    explanation = Explanation(
        model_id=model_id,
        source_id=source_id,
        index=index,
        description=text[:2000],
        type_name=answer.type_name,
        explanation_model_name=answer.explanation_model_name,
        author_id=author.id if author else None,
    )
    session.add(explanation)
    await session.flush()
    return explanation


async def new_explanation(
    session: AsyncSession,
    model_id: str,
    source_id: str,
    index: int,
    text: str,
    *,
    explanation_model: str | None,
    author: User,
) -> Explanation:
    """A person's own explanation of a stored feature."""
    if await session.get(Feature, (model_id, source_id, index)) is None:
        raise NotFound(f"no feature {model_id}/{source_id}/{index}")
    explanation = Explanation(
        model_id=model_id,
        source_id=source_id,
        index=index,
        description=text.strip(),
        type_name=HUMAN_TYPE_NAME,
        explanation_model_name=explanation_model,
        author_id=author.id,
    )
    session.add(explanation)
    await session.flush()
    return explanation


async def get_explanation(session: AsyncSession, explanation_id: int) -> Explanation:
    """The explanation with its scores and votes loaded; `NotFound` if there is none."""
    explanation = (
        await session.execute(
            select(Explanation)
            .where(Explanation.id == explanation_id)
            .options(selectinload(Explanation.scores), selectinload(Explanation.votes))
        )
    ).scalar_one_or_none()
    if explanation is None:
        raise NotFound(f"no explanation {explanation_id}")
    return explanation


async def delete_explanation(session: AsyncSession, explanation_id: int, user: User) -> None:
    """Delete it (with its scores, vectors and votes): its author or an admin only."""
    explanation = await session.get(Explanation, explanation_id)
    if explanation is None:
        raise NotFound(f"no explanation {explanation_id}")
    if explanation.author_id != user.id and not user.is_admin:
        raise Forbidden("you can only delete explanations you wrote")
    await session.delete(explanation)
    await session.flush()


async def vote(session: AsyncSession, explanation_id: int, voter: User) -> ExplanationVote:
    """The voter's vote for the explanation, made if not there yet (voting twice is one vote)."""
    if await session.get(Explanation, explanation_id) is None:
        raise NotFound(f"no explanation {explanation_id}")
    existing = await _vote_of(session, explanation_id, voter)
    if existing is not None:
        return existing
    row = ExplanationVote(voter_id=voter.id, explanation_id=explanation_id, points=1)
    session.add(row)
    await session.flush()
    return row


async def unvote(session: AsyncSession, explanation_id: int, voter: User) -> ExplanationVote:
    """Remove the voter's vote; `NotFound` when they had not voted for it."""
    existing = await _vote_of(session, explanation_id, voter)
    if existing is None:
        raise NotFound(f"you have not voted for explanation {explanation_id}")
    await session.execute(delete(ExplanationVote).where(ExplanationVote.id == existing.id))
    return existing


async def _vote_of(
    session: AsyncSession, explanation_id: int, voter: User
) -> ExplanationVote | None:
    return (
        await session.execute(
            select(ExplanationVote).where(
                ExplanationVote.explanation_id == explanation_id,
                ExplanationVote.voter_id == voter.id,
            )
        )
    ).scalar_one_or_none()


async def export_explanations(
    session: AsyncSession, model_id: str, source_id: str, *, limit: int, offset: int
) -> list[Explanation]:
    """A source's explanations in id order, a page at a time, with their scores and votes."""
    return list(
        (
            await session.execute(
                select(Explanation)
                .where(Explanation.model_id == model_id, Explanation.source_id == source_id)
                .options(selectinload(Explanation.scores), selectinload(Explanation.votes))
                .order_by(Explanation.id)
                .limit(limit)
                .offset(offset)
            )
        )
        .scalars()
        .all()
    )


async def explanations_by(session: AsyncSession, author: User, limit: int) -> list[Explanation]:
    """What `author` wrote or generated, newest first, with scores and votes."""
    return list(
        (
            await session.execute(
                select(Explanation)
                .where(Explanation.author_id == author.id)
                .options(selectinload(Explanation.scores), selectinload(Explanation.votes))
                .order_by(Explanation.id.desc())
                .limit(limit)
            )
        ).scalars()
    )


async def count_explanations(session: AsyncSession, model_id: str, source_id: str) -> int:
    return (
        await session.scalar(
            select(func.count(Explanation.id)).where(
                Explanation.model_id == model_id, Explanation.source_id == source_id
            )
        )
        or 0
    )


async def score_explanation(
    session: AsyncSession,
    client: AsyncAutointerpClient,
    explanation_id: int,
    *,
    scorer: str,
    scorer_model: str | None,
) -> ExplanationScore:
    """Score the explanation with `scorer` (ours or Neuronpedia's name) and store it."""
    name = scorer_name(scorer)
    explanation = await session.get(Explanation, explanation_id)
    if explanation is None:
        raise NotFound(f"no explanation {explanation_id}")
    dashboard = await dashboards.get_dashboard(
        session, explanation.model_id, explanation.source_id, explanation.index
    )
    if not dashboard.activations:
        raise InvalidInput("the explanation's feature has no examples to score it on")
    examples = _examples(dashboard)
    text = explanation.description
    async with upstream_errors(client, session):
        if name == "embedding":
            answer = await client.score_embedding(
                autointerp.ScoreEmbeddingRequest(activations=examples, explanation=text)
            )
        elif name == "simulation":
            answer = await client.score_simulation(
                autointerp.ScoreSimulationRequest(activations=examples, explanation=text)
            )
        else:
            answer = await client.score_fuzz_detection(
                autointerp.ScoreFuzzDetectionRequest(
                    activations=examples,
                    explanation=text,
                    type=autointerp.Type.FUZZ if name == "fuzz" else autointerp.Type.DETECTION,
                )
            )
    score = ExplanationScore(
        explanation_id=explanation.id,
        type_name=name,
        value=answer.score,
        scorer_model=scorer_model,
        details={"breakdown": [b.model_dump() for b in answer.breakdown]},
    )
    session.add(score)
    await session.flush()
    return score
