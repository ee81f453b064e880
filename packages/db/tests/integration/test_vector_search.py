"""The per-embedding-model HNSW index exists and cosine top-k queries use it."""

import random

import pytest
from sqlalchemy import insert, text

from interpedia_core.errors import InvalidInput
from interpedia_db.embeddings import ensure_embedding_model, nearest_explanations
from interpedia_db.models import (
    Explanation,
    ExplanationEmbedding,
    Feature,
    Model,
    Source,
    SourceSet,
)

DIMS = 384
MODEL = "all-MiniLM-L6-v2"


def _unit(rng: random.Random, dims: int) -> list[float]:
    v = [rng.gauss(0, 1) for _ in range(dims)]
    norm = sum(x * x for x in v) ** 0.5
    return [x / norm for x in v]


@pytest.fixture(scope="module")
async def explanations(db_sessionmaker):
    rng = random.Random(0)
    vectors = [_unit(rng, DIMS) for _ in range(3000)]
    async with db_sessionmaker.begin() as session:
        session.add(Model(id="vs-model", display_name="VS", layers=2, d_model=8))
        await session.flush()
        session.add(SourceSet(model_id="vs-model", name="res-vs"))
        await session.flush()
        session.add(
            Source(
                model_id="vs-model",
                id="0-res-vs",
                set_name="res-vs",
                hook_name="blocks.0.hook_resid_post",
                layer=0,
                architecture="standard",
                d_sae=len(vectors),
            )
        )
        await session.flush()
        feature = {"model_id": "vs-model", "source_id": "0-res-vs"}
        await session.execute(
            insert(Feature), [feature | {"index": i} for i in range(len(vectors))]
        )
        ids = (
            (
                await session.execute(
                    insert(Explanation).returning(Explanation.id, sort_by_parameter_order=True),
                    [
                        feature | {"index": i, "description": f"feature {i}", "type_name": "test"}
                        for i in range(len(vectors))
                    ],
                )
            )
            .scalars()
            .all()
        )
        await session.execute(
            insert(ExplanationEmbedding),
            [
                {"explanation_id": id_, "embedding_model": MODEL, "embedding": vec}
                for id_, vec in zip(ids, vectors, strict=True)
            ],
        )
    async with db_sessionmaker() as session:
        await session.execute(text("ANALYZE explanation_embeddings"))
        await session.commit()
    return vectors


async def test_hnsw_index_exists(db_sessionmaker):
    async with db_sessionmaker() as session:
        indexdef = (
            await session.execute(
                text(
                    "SELECT indexdef FROM pg_indexes WHERE tablename = 'explanation_embeddings' "
                    "AND indexdef LIKE '%hnsw%' AND indexdef LIKE '%all-MiniLM-L6-v2%'"
                )
            )
        ).scalar_one()
    assert "vector(384)" in indexdef and "vector_cosine_ops" in indexdef


async def test_cosine_top_k_uses_the_index(db_sessionmaker, explanations):
    query = explanations[42]
    async with db_sessionmaker() as session:
        plan = (
            (
                await session.execute(
                    text(
                        f"EXPLAIN SELECT explanation_id FROM explanation_embeddings "
                        f"WHERE embedding_model = :m ORDER BY embedding::vector({DIMS}) <=> "
                        f"CAST(:q AS vector({DIMS})) LIMIT 10"
                    ),
                    {"m": MODEL, "q": str(query)},
                )
            )
            .scalars()
            .all()
        )
        hits = await nearest_explanations(session, MODEL, query, limit=5, model_id="vs-model")
    assert any("ix_embeddings_hnsw_all_minilm_l6_v2" in line for line in plan), plan
    assert hits[0].index == 42 and hits[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)


async def test_new_embedding_model_gets_its_own_index(db_sessionmaker):
    async with db_sessionmaker.begin() as session:
        await ensure_embedding_model(session, "test/tiny-embedder", 8)
    async with db_sessionmaker() as session:
        count = (
            await session.execute(
                text(
                    "SELECT count(*) FROM pg_indexes "
                    "WHERE indexname = 'ix_embeddings_hnsw_test_tiny_embedder'"
                )
            )
        ).scalar_one()
        assert count == 1
        with pytest.raises(InvalidInput, match="stores 8-dim vectors"):
            await ensure_embedding_model(session, "test/tiny-embedder", 16)
