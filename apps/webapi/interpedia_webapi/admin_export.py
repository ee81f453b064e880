"""Admin exports over the API (Neuronpedia's `/api/admin/export-features` and
`export-explanations`): a source's features or explanations as one JSON array.

A large source does not fit in one answer built in memory, so rows are read a page at a
time by key (index, id), each page in its own short session, and streamed as they come;
the route checks the source exists before the stream starts, so a wrong name is a 404.
"""

from collections.abc import AsyncGenerator
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from interpedia_db.models import Explanation, Feature
from interpedia_webapi import dashboards

PAGE = 256  # rows read per query: bounded memory, few round trips


async def feature_rows(
    sessionmaker: async_sessionmaker[AsyncSession],
    model_id: str,
    source_id: str,
    begin_index: int,
    end_index: int,
) -> AsyncGenerator[dict[str, Any], None]:
    """The dashboards of the source's features with `begin_index <= index <= end_index`
    (both ends included, as Neuronpedia's range), in index order."""
    after = begin_index - 1
    while after < end_index:
        async with sessionmaker() as session:
            indices = list(
                (
                    await session.execute(
                        select(Feature.index)
                        .where(
                            Feature.model_id == model_id,
                            Feature.source_id == source_id,
                            Feature.index > after,
                            Feature.index <= end_index,
                        )
                        .order_by(Feature.index)
                        .limit(PAGE)
                    )
                ).scalars()
            )
            if not indices:
                return
            found = await dashboards.get_dashboards(
                session,
                [(model_id, source_id, i) for i in indices],
                dashboards.MAX_ACTIVATIONS,
            )
        for dashboard in found:
            yield dashboards.feature_json(dashboard)
        after = indices[-1]


async def explanation_rows(
    sessionmaker: async_sessionmaker[AsyncSession],
    model_id: str,
    source_id: str,
    max_results: int | None,
) -> AsyncGenerator[dict[str, Any], None]:
    """The source's explanations in id order, with scores and votes, `max_results` at most."""
    after, sent = 0, 0
    while max_results is None or sent < max_results:
        page = PAGE if max_results is None else min(PAGE, max_results - sent)
        async with sessionmaker() as session:
            rows = list(
                (
                    await session.execute(
                        select(Explanation)
                        .where(
                            Explanation.model_id == model_id,
                            Explanation.source_id == source_id,
                            Explanation.id > after,
                        )
                        .options(selectinload(Explanation.scores), selectinload(Explanation.votes))
                        .order_by(Explanation.id)
                        .limit(page)
                    )
                ).scalars()
            )
        if not rows:
            return
        for explanation in rows:
            yield dashboards.explanation_json(explanation)
        sent += len(rows)
        after = rows[-1].id
