"""Shared fixtures of the webapi suite: seeded data, the real services, apps and servers.

Two models are seeded. `webapi-test` (an imported export) serves the tests of what the
web API does on its own: features, lists, keys, imports, keyword search. `smollm2-135m`
is really served: `real_services` starts the inference service on the packaged model
with a random SAE at layer 6 (source `6-res-it`), and the autointerp service, as their
own processes on 127.0.0.1, once per session; `real_api` and `live_server` point the
web API at them, so those tests show the web API and the services agree.
"""

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

# Tests run with --import-mode=importlib; make the factories importable by a unique name.
sys.path.insert(0, str(Path(__file__).parent))

from graph_stack import activity_web, graph_service, graph_web  # noqa: F401 - graph fixtures
from webapi_factories import store_feature_map_and_evals, write_export

from interpedia_testing.servers import ThreadedServer, running_services

MODEL, SOURCE, SOURCE_SET = "webapi-test", "6-res-jb", "res-jb"
N_FEATURES = 40
ADMIN_KEY = "admin-key-for-tests-0123456789"

SERVED_MODEL, SERVED_SOURCE, SERVED_SET = "smollm2-135m", "6-res-it", "res-it"
SERVED_D_SAE = 256
SERVED_LAYERS, SERVED_D_MODEL = 30, 576  # SmolLM2-135M: custom vectors are checked against them
# The database knows a few features more than the served SAE has: asking the inference
# service for one of those gets its 404, which the web API must pass on.
SERVED_FEATURES = SERVED_D_SAE + 8
INFERENCE_SECRET = "inference-secret-for-tests"
INFERENCE_TOKEN_LIMIT = 128
INFERENCE_MAX_COMPLETION_TOKENS = 48


@pytest.fixture(scope="session")
async def seeded(db_sessionmaker, tmp_path_factory) -> dict[str, Any]:
    """Two imported exports (`webapi-test`, `smollm2-135m`), an admin and two users."""
    from interpedia_webapi import accounts

    root = tmp_path_factory.mktemp("webapi-export")
    export = write_export(root, MODEL, SOURCE, n_features=N_FEATURES, embedding_dims=256)
    served_root = tmp_path_factory.mktemp("served-export")
    served = write_export(
        served_root,
        SERVED_MODEL,
        SERVED_SOURCE,
        n_features=SERVED_FEATURES,
        acts_per_feature=1,
        layers=SERVED_LAYERS,
        dimension=SERVED_D_MODEL,
    )
    for location, work in ((export, root / "work"), (served, served_root / "work")):
        await import_export(db_sessionmaker, location, work)
    async with db_sessionmaker.begin() as session:
        await accounts.ensure_bootstrap_admin(session, ADMIN_KEY)
        alice = await accounts.create_user(session, "alice")
        alice_key = (await accounts.issue_key(session, alice)).key
        bob = await accounts.create_user(session, "bob")
        bob_key = (await accounts.issue_key(session, bob)).key
    return {"export": export, "root": root, "alice": alice_key, "bob": bob_key, "admin": ADMIN_KEY}


async def import_export(sessionmaker: Any, location: Path, work: Path) -> None:
    """Import the export at `location` (scratch files under `work`) to the end."""
    from interpedia_webapi import feature_import

    async with sessionmaker.begin() as session:
        job = await feature_import.start_import(session, str(location))
    done = await feature_import.run_import(sessionmaker, job.id, work_dir=work)
    assert done.status == "complete"


@pytest.fixture(scope="session")
async def explored(seeded, db_sessionmaker) -> dict[str, Any]:
    """The seeded source with a feature map and evaluations, as the trainer stores them."""
    await store_feature_map_and_evals(db_sessionmaker, MODEL, SOURCE, N_FEATURES)
    return seeded


@pytest.fixture(scope="session")
def real_services(seeded, database_url, tmp_path_factory) -> Iterator[dict[str, str]]:
    """The inference service (packaged model, a random 256-feature SAE at layer 6, a secret)
    and the autointerp service (on the test database), as real processes."""
    from interpedia_runtime.saes import save_random_sae

    root = tmp_path_factory.mktemp("services")
    sae = save_random_sae(
        root / "sae", d_in=576, d_sae=SERVED_D_SAE, hook_name="blocks.6.hook_resid_post"
    )
    env = {
        "DATABASE_URL": database_url,
        "INTERPEDIA_INFERENCE_MODEL_ID": SERVED_MODEL,
        "INTERPEDIA_INFERENCE_SAE_SOURCES": str(sae),
        "INTERPEDIA_INFERENCE_SAE_SOURCE_SET": SERVED_SET,
        "INTERPEDIA_INFERENCE_SECRET": INFERENCE_SECRET,
        "INTERPEDIA_INFERENCE_TOKEN_LIMIT": str(INFERENCE_TOKEN_LIMIT),
        "INTERPEDIA_INFERENCE_MAX_COMPLETION_TOKENS": str(INFERENCE_MAX_COMPLETION_TOKENS),
        "INTERPEDIA_INFERENCE_DEVICE": "cpu",
        # The test process and other services share a few cores: one thread each keeps
        # OpenMP threads from spinning against each other (generation slows 10x otherwise).
        "INTERPEDIA_INFERENCE_TORCH_THREADS": "1",
    }
    with running_services(["inference", "autointerp"], env, root / "logs") as urls:
        yield urls


@pytest.fixture(scope="session")
def locally_embedded(real_services, database_url) -> None:
    """The served model's explanations embedded with the local model (semantic search)."""
    env = {**os.environ, "DATABASE_URL": database_url, "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [
            str(Path(sys.executable).parent / "interpedia"),
            "embed-explanations",
            "--model",
            SERVED_MODEL,
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )


def make_settings(database_url: str | None, tmp: Path, **overrides: Any):
    from interpedia_webapi.settings import WebapiSettings

    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": tmp,
        "rate_limit_per_minute": 6000,
        "rate_limit_burst": 1000,
    }
    values.update(overrides)
    return WebapiSettings(**values)


def service_settings(urls: dict[str, str]) -> dict[str, Any]:
    """What points the web API at the real services."""
    return {
        "inference_url": urls["inference"],
        "inference_secret": INFERENCE_SECRET,
        "autointerp_url": urls["autointerp"],
    }


@asynccontextmanager
async def in_process(
    db_sessionmaker, tmp: Path, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The app in this process on the test's sessionmaker, driven over ASGI."""
    from interpedia_webapi.app import create_app

    app = create_app(make_settings(None, tmp, import_dir=tmp / "imports", **overrides))
    app.state.sessionmaker = db_sessionmaker
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", timeout=120
        ) as client:
            yield client, app
        for task in app.state.import_tasks.values():
            if not task.done():
                await task


@pytest.fixture
async def api(seeded, db_sessionmaker, tmp_path) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The app in process with no other service configured (what the web API does alone)."""
    async with in_process(db_sessionmaker, tmp_path) as pair:
        yield pair


@pytest.fixture
async def real_api(
    seeded, real_services, db_sessionmaker, tmp_path
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The app in process, talking to the real inference and autointerp services."""
    async with in_process(db_sessionmaker, tmp_path, **service_settings(real_services)) as pair:
        yield pair


def live_app(database_url: str, tmp: Path, **overrides: Any) -> Any:
    from interpedia_webapi.app import create_app

    return create_app(
        make_settings(
            database_url,
            tmp,
            admin_bootstrap_key=ADMIN_KEY,
            import_dir=tmp / "imports",
            **overrides,
        )
    )


@pytest.fixture(scope="session")
def live_server(
    explored, real_services, database_url, tmp_path_factory
) -> Iterator[ThreadedServer]:
    """One real web API server for the session, on the real services (browser, clients),
    over the seeded data with its feature map and evaluations (set up here: the browser's
    event loop would refuse an async fixture later)."""
    seeded = explored
    tmp = tmp_path_factory.mktemp("live")
    app = live_app(
        database_url, tmp, import_roots=[str(seeded["root"])], **service_settings(real_services)
    )
    with ThreadedServer(app) as server:
        yield server
