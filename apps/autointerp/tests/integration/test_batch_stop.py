"""A stop request abandons the features in flight (an LLM call that hangs included); what
was committed stays, and the rerun explains only the rest."""

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interpedia_autointerp import batch
from interpedia_autointerp.explain import OFFLINE_TYPE_NAME
from interpedia_core import stopping
from interpedia_db.models import Explanation

from ..factories import add_feature, add_model_and_sources

MODEL, SOURCE, N_FEATURES = "stop-model", "0-res-stop", 8


async def _explained(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    async with sessionmaker() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(Explanation)
                .where(Explanation.model_id == MODEL, Explanation.source_id == SOURCE)
            )
        )


async def test_a_stop_abandons_the_features_in_flight_and_the_rerun_does_the_rest(
    db_sessionmaker: async_sessionmaker[AsyncSession], cat_records, local_embedder
) -> None:
    async with db_sessionmaker.begin() as session:
        await add_model_and_sources(session, MODEL, {SOURCE: "res-stop"})
        for index in range(N_FEATURES):
            await add_feature(session, MODEL, SOURCE, index, cat_records)
    token = stopping.StopToken()
    real = batch.offline_explainer()
    calls = 0

    async def hangs_on_the_fourth(examples):
        nonlocal calls
        calls += 1
        if calls == 4:
            token.request("stopped by test")
            await asyncio.sleep(600)  # an LLM call that does not come back
        return await real(examples)

    with stopping.stop_scope(token), pytest.raises(stopping.Stopped, match="3 done and 5 left"):
        await asyncio.wait_for(
            batch.explain_source(
                db_sessionmaker,
                MODEL,
                SOURCE,
                hangs_on_the_fourth,
                OFFLINE_TYPE_NAME,
                embedder=local_embedder,
                concurrency=1,
            ),
            timeout=60,
        )
    assert await _explained(db_sessionmaker) == 3

    rest = await batch.explain_source(
        db_sessionmaker, MODEL, SOURCE, real, OFFLINE_TYPE_NAME, embedder=local_embedder
    )
    assert (rest.skipped, rest.done) == (3, N_FEATURES - 3)
    assert await _explained(db_sessionmaker) == N_FEATURES
