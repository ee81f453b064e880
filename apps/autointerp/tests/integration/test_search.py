"""Explanation search on the real database with the real local embedding model."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interpedia_autointerp import search, storage
from interpedia_autointerp.app import create_app
from interpedia_autointerp.embeddings import EmbedderRegistry, LocalEmbedder
from interpedia_autointerp.explain import GeneratedExplanation
from interpedia_autointerp.search import SearchFilters
from interpedia_autointerp.settings import AutointerpSettings

from ..factories import add_feature, add_model_and_sources

MODEL = "search-model"
FELINES = [
    "cats and kittens",
    "domestic felines such as tabby cats",
    "lions, tigers and other big cats",
]
TAXES = ["government revenue from taxation", "customs duties and tariffs on imported goods"]
OTHERS = [
    "income statements of companies",
    "programming code in Python",
    "dates in the calendar",
    "the color red",
    "football matches and sports teams",
    "cooking recipes and ingredients",
    "legal contracts and agreements",
    "weather and heavy rain",
    "musical instruments",
    "dogs and puppies",
    "the moon and planets",
]
IN_SET_B = "dogs and puppies"  # the one explanation in source set res-b


@pytest.fixture(scope="module")
async def seeded(
    db_sessionmaker: async_sessionmaker[AsyncSession], local_embedder: LocalEmbedder
) -> dict[str, int]:
    """Explanations (description → id) on two sources of one model, embedded locally."""
    ids: dict[str, int] = {}
    async with db_sessionmaker.begin() as session:
        await add_model_and_sources(session, MODEL, {"0-res-a": "res-a", "0-res-b": "res-b"})
        rows = []
        for index, description in enumerate(FELINES + TAXES + OTHERS):
            source = "0-res-b" if description == IN_SET_B else "0-res-a"
            await add_feature(session, MODEL, source, index)
            row = await storage.store_explanation(
                session,
                MODEL,
                source,
                index,
                GeneratedExplanation(description, "test", None),
            )
            rows.append(row)
            ids[description] = row.id
        await storage.store_embeddings(session, local_embedder, rows)
    return ids


async def _search(sessionmaker, embedder, query, mode, filters=None, **kw):
    async with sessionmaker.begin() as session:
        return await search.search_explanations(
            session, embedder, query, mode, filters or SearchFilters(model_id=MODEL), **kw
        )


async def test_semantic_cat_finds_felines(seeded, db_sessionmaker, local_embedder) -> None:
    hits = await _search(db_sessionmaker, local_embedder, "cat", "semantic")
    assert {h.description for h in hits[:3]} == set(FELINES)
    assert hits[0].similarity is not None and hits[0].similarity > hits[3].similarity
    assert all(h.model_id == MODEL for h in hits)


async def test_semantic_tax_finds_revenue_and_duties(
    seeded, db_sessionmaker, local_embedder
) -> None:
    hits = await _search(db_sessionmaker, local_embedder, "tax", "semantic", limit=3)
    assert set(TAXES) <= {h.description for h in hits}


async def test_keyword_search_matches_words(seeded, db_sessionmaker, local_embedder) -> None:
    hits = await _search(db_sessionmaker, local_embedder, "cats", "keyword")
    assert {h.description for h in hits} == {FELINES[0], FELINES[1], FELINES[2]}
    assert all(h.keyword_rank is not None and h.keyword_rank > 0 for h in hits)
    assert await _search(db_sessionmaker, local_embedder, "zebra", "keyword") == []


async def test_hybrid_fuses_both(seeded, db_sessionmaker, local_embedder) -> None:
    hits = await _search(db_sessionmaker, local_embedder, "tax", "hybrid", limit=5)
    assert set(TAXES) <= {h.description for h in hits[:3]}
    assert all(h.similarity is not None for h in hits)
    # RRF scores are ordered and positive.
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


async def test_filters_and_pagination(seeded, db_sessionmaker, local_embedder) -> None:
    only_b = await _search(
        db_sessionmaker,
        local_embedder,
        "animals",
        "semantic",
        SearchFilters(model_id=MODEL, source_set="res-b"),
    )
    assert [h.description for h in only_b] == [IN_SET_B]
    by_source = await _search(
        db_sessionmaker,
        local_embedder,
        "animals",
        "hybrid",
        SearchFilters(model_id=MODEL, source_ids=["0-res-a"]),
    )
    assert IN_SET_B not in {h.description for h in by_source}
    first = await _search(db_sessionmaker, local_embedder, "cat", "semantic", limit=2)
    second = await _search(db_sessionmaker, local_embedder, "cat", "semantic", limit=2, offset=2)
    both = await _search(db_sessionmaker, local_embedder, "cat", "semantic", limit=4)
    assert [h.explanation_id for h in first + second] == [h.explanation_id for h in both]
    nothing = await _search(
        db_sessionmaker, local_embedder, "cat", "hybrid", SearchFilters(model_id="no-such-model")
    )
    assert nothing == []


@pytest.fixture
def db_client(database_url, embedders: EmbedderRegistry, wait_ready) -> Iterator[TestClient]:
    settings = AutointerpSettings(database_url=database_url)
    with TestClient(create_app(settings, embedders=embedders)) as client:
        wait_ready(client)
        yield client


def test_search_over_http(seeded, db_client: TestClient) -> None:
    response = db_client.post(
        "/v1/search/explanations",
        json={"query": "feline", "mode": "semantic", "model_id": MODEL, "limit": 3},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["embedding_model"] == "all-MiniLM-L6-v2"
    assert {r["description"] for r in body["results"]} == set(FELINES)
    assert {"model_id", "source_id", "index", "similarity"} <= set(body["results"][0])
    bad = db_client.post("/v1/search/explanations", json={"query": "cat", "source_set": "res-a"})
    assert bad.status_code == 400 and "model_id" in bad.json()["detail"]


@pytest.mark.parametrize("mode", ["semantic", "hybrid"])
def test_deep_pages_are_served_or_refused_by_the_schema(seeded, db_client, mode) -> None:
    """offset + limit beyond pgvector's largest candidate list (1000) used to answer 500
    (once the connection had loaded pgvector, which checks the setting's range)."""
    for _ in range(2):
        first = {"query": "cat", "mode": mode, "model_id": MODEL}
        assert db_client.post("/v1/search/explanations", json=first).status_code == 200
    deep = db_client.post(
        "/v1/search/explanations",
        json={"query": "cat", "mode": mode, "model_id": MODEL, "offset": 995, "limit": 10},
    )
    assert deep.status_code == 200, deep.text
    assert deep.json()["results"] == []
    past = db_client.post(
        "/v1/search/explanations", json={"query": "cat", "mode": mode, "offset": 10_001}
    )
    assert past.status_code == 422 and "offset" in past.json()["detail"]


@pytest.mark.parametrize("index", [2**31, -1])
def test_feature_indices_beyond_int32_are_refused_not_500(seeded, db_client, index) -> None:
    """Index 2147483648 reached the `integer` column of the feature lookup: a 500."""
    response = db_client.post(
        "/v1/explain/feature", json={"model_id": MODEL, "source_id": "0-res-a", "index": index}
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["body", "index"]
