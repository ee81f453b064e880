"""Dashboards land in the database once, however often a job runs; SAEs become sources.

A source split into feature-range jobs is browsable only once its last range is stored.
"""

import asyncio
import json

from sqlalchemy import func, select

from interpedia_db.models import Activation, Feature, Source
from interpedia_trainer.dashboard_store import (
    mark_dashboards_done,
    register_source,
    store_dashboards,
)
from interpedia_trainer.dashboards import ActivationExample, FeatureDashboard

VOCAB = ["<s>", " the", " union", " is", " strong"]


def token_strings(ids):
    return [VOCAB[i] for i in ids]


def _dashboard(index: int, scale: float) -> FeatureDashboard:
    top = ActivationExample(
        prompt_index=7,
        tokens=[0, 1, 2, 3],
        values=[0, scale, 0.5, 0],
        max_value=scale,
        max_value_token_index=1,
    )
    binned = ActivationExample(
        prompt_index=9,
        tokens=[1, 4],
        values=[0.1, 0.2],
        max_value=0.2,
        max_value_token_index=1,
        bin_index=0,
        bin_min=0.0,
        bin_max=0.4,
    )
    return FeatureDashboard(
        index=index,
        max_activation=scale,
        frac_nonzero=0.25,
        top_examples=[top],
        bin_examples=[binned],
        freq_hist_heights=[3, 1],
        freq_hist_values=[0.25, 0.75],
        logit_pos_tokens=[4, 2],
        logit_pos_values=[1.5, 1.25],
        logit_neg_tokens=[0],
        logit_neg_values=[-2.0],
        logit_hist_heights=[1, 4],
        logit_hist_values=[-1.0, 1.0],
        cossim_indices=[index, 3],
        cossim_values=[1.0, 0.5],
    )


async def _register(session, folder, source_set="res-test"):
    sae = folder / "sae"
    sae.mkdir(parents=True, exist_ok=True)
    (sae / "cfg.json").write_text(
        json.dumps(
            {
                "architecture": "topk",
                "d_in": 8,
                "d_sae": 16,
                "metadata": {"hook_name": "blocks.2.hook_resid_post"},
            }
        )
    )
    return await register_source(
        session,
        model_id="store-model",
        model_display_name="Store model",
        n_layers=4,
        d_model=8,
        source_set=source_set,
        sae_path=str(sae),
    )


async def test_register_then_store_is_idempotent(db_sessionmaker, tmp_path):
    async with db_sessionmaker.begin() as session:
        source = await _register(session, tmp_path)
    assert (source.id, source.layer, source.d_sae, source.architecture) == (
        "2-res-test",
        2,
        16,
        "topk",
    )

    for scale in (2.0, 3.0):  # a retried job writes the range again
        async with db_sessionmaker.begin() as session:
            written = await store_dashboards(
                session,
                "store-model",
                "2-res-test",
                "blocks.2.hook_resid_post",
                [_dashboard(0, scale), _dashboard(1, scale)],
                token_strings,
                "sotu",
            )
        assert written == 4

    async with db_sessionmaker() as session:
        feature = await session.get(Feature, ("store-model", "2-res-test", 0))
        n_activations = await session.scalar(
            select(func.count()).select_from(Activation).where(Activation.model_id == "store-model")
        )
        top = (
            await session.execute(
                select(Activation).where(
                    Activation.model_id == "store-model",
                    Activation.index == 0,
                    Activation.bin_min.is_(None),
                )
            )
        ).scalar_one()
    assert feature.max_act == 3.0 and feature.pos_str == [" strong", " union"]
    assert feature.neg_values == [-2.0] and feature.topk_cos_sim_indices == [0, 3]
    assert n_activations == 4
    assert top.tokens == ["<s>", " the", " union", " is"] and top.max_value_token_index == 1


async def test_registering_again_updates_the_source(db_sessionmaker, tmp_path):
    async with db_sessionmaker.begin() as session:
        await _register(session, tmp_path / "first")
    async with db_sessionmaker.begin() as session:
        await _register(session, tmp_path / "second")
    async with db_sessionmaker() as session:
        sources = (
            (await session.execute(select(Source).where(Source.model_id == "store-model")))
            .scalars()
            .all()
        )
    assert len(sources) == 1 and sources[0].weights_uri.endswith("second/sae")


async def _store_range(session, source_id: str, indices: range) -> None:
    dashboards = [_dashboard(i, 1.0) for i in indices]
    await store_dashboards(
        session,
        "store-model",
        source_id,
        "blocks.2.hook_resid_post",
        dashboards,
        token_strings,
        "t",
    )


async def test_a_source_is_complete_only_when_every_range_is_stored(db_sessionmaker, tmp_path):
    async with db_sessionmaker.begin() as session:
        source = await _register(session, tmp_path, source_set="res-ranges")  # d_sae 16
    async with db_sessionmaker.begin() as session:
        await _store_range(session, source.id, range(0, 8))
        first = await mark_dashboards_done(session, "store-model", source.id, num_prompts=5)
    async with db_sessionmaker() as session:
        half = await session.get(Source, ("store-model", source.id), populate_existing=True)
    assert not first and not half.has_dashboards and half.num_prompts == 5

    async with db_sessionmaker.begin() as session:
        await _store_range(session, source.id, range(8, 16))
        second = await mark_dashboards_done(session, "store-model", source.id)
    async with db_sessionmaker() as session:
        done = await session.get(Source, ("store-model", source.id), populate_existing=True)
    assert second and done.has_dashboards and done.num_prompts == 5


async def test_two_ranges_finishing_at_once_still_complete_the_source(db_sessionmaker, tmp_path):
    """Each range's transaction alone sees half the features: the source lock orders them."""
    async with db_sessionmaker.begin() as session:
        source = await _register(session, tmp_path, source_set="res-race")
    async with db_sessionmaker() as first, db_sessionmaker() as second:
        await _store_range(first, source.id, range(0, 8))
        await _store_range(second, source.id, range(8, 16))
        # (a plain FOR UPDATE would wait here for the second's KEY SHARE: a deadlock)
        assert not await asyncio.wait_for(
            mark_dashboards_done(first, "store-model", source.id), timeout=10
        )
        waiting = asyncio.create_task(mark_dashboards_done(second, "store-model", source.id))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # blocked on the first transaction's lock of the source
        await first.commit()
        assert await asyncio.wait_for(waiting, timeout=10)
        await second.commit()
    async with db_sessionmaker() as session:
        done = await session.get(Source, ("store-model", source.id), populate_existing=True)
    assert done.has_dashboards


async def test_a_whole_large_source_is_stored_in_one_call(db_sessionmaker, tmp_path):
    """4,608 features at once: more than one statement's 32,767 parameters."""
    async with db_sessionmaker.begin() as session:
        await _register(session, tmp_path, source_set="res-wide")
        written = await store_dashboards(
            session,
            "store-model",
            "2-res-wide",
            "blocks.2.hook_resid_post",
            [_dashboard(i, 1.0 + i % 3) for i in range(4608)],
            token_strings,
            "sotu",
        )
    async with db_sessionmaker() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Feature).where(Feature.source_id == "2-res-wide")
        )
    assert (written, stored) == (2 * 4608, 4608)
