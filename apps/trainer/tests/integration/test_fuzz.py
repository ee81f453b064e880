"""The trainer API keeps its contract under fuzzing, on a database of its own.

No worker runs against that database, so the training, dashboard and concept requests the
fuzzer sends only queue jobs: nothing heavy runs, and no other test's worker sees them.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_db.connect import create_engine, create_sessionmaker
from interpedia_db.models import TrainingRun
from interpedia_testing.fuzz import load_schema
from interpedia_testing.servers import served
from interpedia_trainer.app import create_app
from interpedia_trainer.settings import TrainerSettings

from .conftest import add_source

MODEL, SOURCE_SET = "fuzz-model", "res-fuzz"
SOURCE = f"1-{SOURCE_SET}"

# Hypothesis builds float strategies only where subnormal floats exist.
pytestmark = pytest.mark.usefixtures("subnormal_floats")

schema = load_schema(
    create_app().openapi(),
    known={"model_id": [MODEL], "source_id": [SOURCE], "hook_name": ["blocks.1.hook_resid_post"]},
)


async def _seed(session: AsyncSession, weights: Path) -> None:
    """A source with weights (for dashboards and concepts) and two finished runs."""
    await add_source(session, MODEL, SOURCE_SET, weights_uri=str(weights))
    for name in ("1-old-a", "1-old-b"):
        session.add(
            TrainingRun(
                name=name,
                model_id=MODEL,
                hook_name="blocks.1.hook_resid_post",
                architecture="topk",
                config={"d_sae": 8, "name": name},
                status="succeeded",
            )
        )


@pytest.fixture(scope="module")
async def trainer_url(make_database, tiny_corpus: Path, tmp_path_factory) -> Iterator[str]:
    database_url = make_database("fuzz_trainer")
    engine = create_engine(database_url)
    async with create_sessionmaker(engine).begin() as session:
        await _seed(session, tmp_path_factory.mktemp("weights"))
    await engine.dispose()
    data_dir = tmp_path_factory.mktemp("trainer-fuzz")
    settings = TrainerSettings(
        database_url=database_url, corpus=str(tiny_corpus), data_dir=data_dir
    )
    with served(create_app(settings)) as url:
        yield url


@schema.parametrize()
def test_trainer_api_keeps_its_contract(case: schemathesis.Case, trainer_url: str) -> None:
    case.call_and_validate(base_url=trainer_url)
