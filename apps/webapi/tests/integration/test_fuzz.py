"""The web API keeps its contract under fuzzing: a database of its own holding one imported
export and an admin, requests with the admin's key.

No inference or autointerp service is configured, so routes that need one are fuzzed up to
that point (their bounds, lookups and the declared 400); those services are fuzzed on their
own, and `test_real_services` shows the web API and they agree.

Import locations are narrowed to that export's folder (the fuzzer must not reach for URLs),
and revoking keys is left out: revoking the admin's own key would leave every later
operation a 401 (`test_contract` checks that route's bounds).
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from webapi_factories import write_export

from interpedia_db.connect import create_engine, create_sessionmaker
from interpedia_testing.fuzz import load_schema
from interpedia_testing.servers import served
from interpedia_webapi import accounts
from interpedia_webapi.app import create_app

from ..conftest import ADMIN_KEY, MODEL, SOURCE, SOURCE_SET, import_export, make_settings

ROOT = Path(tempfile.gettempdir()) / f"interpedia-webapi-fuzz-{os.getpid()}"

# Hypothesis builds float strategies only where subnormal floats exist.
pytestmark = pytest.mark.usefixtures("subnormal_floats")

schema = load_schema(
    create_app().openapi(),
    known={
        "modelId": [MODEL],
        "model_id": [MODEL],
        "model": [MODEL],
        "layer": [SOURCE],
        "source": [SOURCE],
        "source_id": [SOURCE],
        "layers": [SOURCE],
        "selectedLayers": [SOURCE],
        "sourceSet": [SOURCE_SET],
        "releaseName": [f"{MODEL}-{SOURCE_SET}"],
        "location": [str(ROOT / "exports")],
    },
    headers={"x-api-key": ADMIN_KEY},
).exclude(method="DELETE", path="/api/me/keys/{key_id}")


async def _seed(database_url: str, root: Path) -> None:
    engine = create_engine(database_url)
    sessionmaker = create_sessionmaker(engine)
    export = write_export(root / "exports", MODEL, SOURCE, n_features=8, embedding_dims=256)
    await import_export(sessionmaker, export, root / "work")
    async with sessionmaker.begin() as session:
        await accounts.ensure_bootstrap_admin(session, ADMIN_KEY)
    await engine.dispose()


@pytest.fixture(scope="module")
async def webapi_url(make_database) -> Iterator[str]:
    database_url = make_database("fuzz_webapi")
    shutil.rmtree(ROOT, ignore_errors=True)
    await _seed(database_url, ROOT)
    settings = make_settings(database_url, ROOT, import_dir=ROOT / "imports")
    try:
        with served(create_app(settings)) as url:
            yield url
    finally:
        shutil.rmtree(ROOT, ignore_errors=True)


@schema.parametrize()
def test_webapi_keeps_its_contract(case: schemathesis.Case, webapi_url: str) -> None:
    case.call_and_validate(base_url=webapi_url)
