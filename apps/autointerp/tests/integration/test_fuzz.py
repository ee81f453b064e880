"""The autointerp API keeps its contract under fuzzing: a database of its own holding a few
features with examples and explanations, the real local embedding model, and a fake
OpenAI-compatible LLM on loopback (so the LLM paths run and nothing leaves the machine)."""

import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis

from interpedia_autointerp import storage
from interpedia_autointerp.app import create_app
from interpedia_autointerp.embeddings import EmbedderRegistry
from interpedia_autointerp.explain import GeneratedExplanation
from interpedia_autointerp.settings import AutointerpSettings
from interpedia_db.connect import create_engine, create_sessionmaker
from interpedia_testing.fuzz import load_schema
from interpedia_testing.servers import served

from ..conftest import CAT_TEXTS, CAT_WORDS, OTHER_TEXTS, make_record, serve_fake_llm
from ..factories import add_feature, add_model_and_sources

MODEL, SOURCE, SOURCE_SET = "fuzz-model", "0-res-fuzz", "res-fuzz"

# Hypothesis builds float strategies only where subnormal floats exist.
pytestmark = pytest.mark.usefixtures("subnormal_floats")

schema = load_schema(
    create_app().openapi(),
    known={
        "model_id": [MODEL],
        "source_id": [SOURCE],
        "source_ids": [SOURCE],
        "source_set": [SOURCE_SET],
        "embedding_model": ["all-MiniLM-L6-v2"],
    },
)


def _sensible_llm(messages: list[dict[str, Any]]) -> str:
    """What a cooperative LLM answers each prompt: an explanation, or the judges' lists."""
    prompt = messages[-1]["content"]
    simulation = re.search(r"JSON list of (\d+) integers, one per token", prompt)
    if simulation:
        return str([5] * int(simulation.group(1)))
    if "Example " in prompt:  # detection and fuzzing: one 0/1 per example
        return str([1] * prompt.count("Example "))
    return "Explanation: cats"


async def _seed(database_url: str, embedders: EmbedderRegistry) -> None:
    """Features 0-3 with cat examples, each with an embedded explanation."""
    engine = create_engine(database_url)
    records = [make_record(t, CAT_WORDS) for t in CAT_TEXTS[:4]]
    records += [make_record(t, {}) for t in OTHER_TEXTS[:4]]
    async with create_sessionmaker(engine).begin() as session:
        await add_model_and_sources(session, MODEL, {SOURCE: SOURCE_SET})
        rows = []
        for index in range(4):
            await add_feature(session, MODEL, SOURCE, index, records, ["Ġcat"])
            explanation = GeneratedExplanation("cats and kittens", "test", None)
            rows.append(await storage.store_explanation(session, MODEL, SOURCE, index, explanation))
        await storage.store_embeddings(session, embedders.get(), rows)
    await engine.dispose()


@pytest.fixture(scope="module")
async def autointerp_url(make_database, embedders: EmbedderRegistry) -> Iterator[str]:
    database_url = make_database("fuzz_autointerp")
    await _seed(database_url, embedders)
    with serve_fake_llm() as llm:
        llm.reply = _sensible_llm
        settings = AutointerpSettings(
            database_url=database_url, llm_base_url=llm.url, llm_model="fake", llm_max_retries=0
        )
        with served(create_app(settings, embedders=embedders)) as url:
            yield url


@schema.parametrize()
def test_autointerp_api_keeps_its_contract(case: schemathesis.Case, autointerp_url: str) -> None:
    case.call_and_validate(base_url=autointerp_url)
