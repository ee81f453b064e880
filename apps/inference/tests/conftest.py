"""Fixtures of the inference tests: a served app on the tiny random model with two small
random SAEs (unit), and the packaged model with a random SAE (integration, slow)."""

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from interpedia_inference.app import create_app
from interpedia_inference.settings import InferenceSettings
from interpedia_runtime.saes import save_random_sae

TINY_SET = "res-test"
D_SAE = 256


@pytest.fixture(scope="session")
def sae_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="interpedia-saes-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_sae_dirs(sae_root: Path) -> list[str]:
    """A standard SAE on layer 1 and a TopK SAE on layer 0 of the tiny model."""
    return [
        str(
            save_random_sae(
                sae_root / "tiny-l1",
                d_in=64,
                d_sae=D_SAE,
                hook_name="blocks.1.hook_resid_post",
                seed=1,
            )
        ),
        str(
            save_random_sae(
                sae_root / "tiny-l0",
                d_in=64,
                d_sae=D_SAE,
                hook_name="blocks.0.hook_resid_post",
                architecture="topk",
                k=16,
                seed=2,
            )
        ),
    ]


def tiny_settings(sae_dirs: list[str], **overrides: object) -> InferenceSettings:
    values: dict[str, object] = {
        "model_id": "tiny-random",
        "sae_sources": sae_dirs,
        "sae_source_set": TINY_SET,
        "device": "cpu",
        "token_limit": 64,
        "max_completion_tokens": 40,
        "max_loaded_saes": 4,
    }
    values.update(overrides)
    return InferenceSettings(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def running(app: FastAPI, load_seconds: float = 120.0) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan, wait until it is ready, and hand out an ASGI client."""
    async with app.router.lifespan_context(app):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + load_seconds
        while not app.state.ready:
            if getattr(app.state, "load_error", None) or loop.time() > deadline:
                raise RuntimeError(
                    f"app did not load: {getattr(app.state, 'load_error', 'timeout')}"
                )
            await asyncio.sleep(0.05)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", timeout=120
        ) as client:
            yield client


@pytest.fixture(scope="session")
async def tiny_app(tiny_sae_dirs: list[str]) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(tiny_settings(tiny_sae_dirs))
    async with running(app) as client:
        yield app, client


@pytest.fixture
def client(tiny_app: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return tiny_app[1]


@pytest.fixture
async def camel_default_client(tiny_sae_dirs: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    """The tiny app configured to answer undecided requests in camelCase."""
    async with running(create_app(tiny_settings(tiny_sae_dirs, wire_dialect="camel"))) as client:
        yield client


@pytest.fixture(scope="session")
async def attention_sae_app(sae_root: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The tiny model with a random SAE on layer 1's attention output (attn.hook_z)."""
    sae_dir = save_random_sae(
        sae_root / "tiny-att-l1", d_in=64, d_sae=D_SAE, hook_name="blocks.1.attn.hook_z", seed=3
    )
    app = create_app(tiny_settings([str(sae_dir)], sae_source_set="att-test"))
    async with running(app) as client:
        yield app, client
