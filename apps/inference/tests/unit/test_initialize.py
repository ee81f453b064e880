"""POST /initialize loading another model at run time: a 3-layer random model saved as a
local Hugging Face folder, with its own SAE, replaces the tiny model; a request already on
the old model finishes there; failed loads leave the old model serving.

Each test has its own app (the session's `tiny_app` must keep its model)."""

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from interpedia_inference.app import create_app
from interpedia_runtime.models import tiny_random_model
from interpedia_runtime.saes import LoadedSae, save_random_sae

from ..conftest import TINY_SET, running, tiny_settings

MODEL = "tiny-random"
PROMPT = "The quick brown fox"


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(folder, SAE folder): a random 3-layer model saved the way Hugging Face loads it, and
    a random SAE on its last layer."""
    root = tmp_path_factory.mktemp("other-model")
    model = tiny_random_model(seed=4, n_layers=3)
    model.hf_model.save_pretrained(root / "model")
    model.tokenizer.save_pretrained(root / "model")
    sae = save_random_sae(
        root / "sae", d_in=64, d_sae=32, hook_name="blocks.2.hook_resid_post", seed=5
    )
    return str(root / "model"), str(sae)


@pytest.fixture
async def own_app(tiny_sae_dirs: list[str]) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(tiny_settings(tiny_sae_dirs))
    async with running(app) as client:
        yield app, client


def _single(source: str, model: str = MODEL) -> dict:
    return {"prompt": PROMPT, "model": model, "source": source, "index": 3}


async def test_another_model_replaces_the_served_one_after_requests_in_flight(
    own_app: tuple[FastAPI, httpx.AsyncClient], other_model: tuple[str, str]
) -> None:
    app, client = own_app
    folder, sae = other_model
    old = app.state.engine
    expected = (await client.post("/v1/activation/single", json=_single(f"1-{TINY_SET}"))).json()

    # Hold the old engine's next batch until the switch is done: that request is in flight.
    release = threading.Event()
    runner = old.batcher._runner

    def held(*args: object) -> object:
        release.wait(timeout=60)
        return runner(*args)

    old.batcher._runner = held
    in_flight = asyncio.create_task(
        client.post("/v1/activation/single", json=_single(f"1-{TINY_SET}"))
    )
    while old.batcher.idle():  # noqa: ASYNC110 - until the request has reached the batcher
        await asyncio.sleep(0.01)

    switched = await client.post(
        "/initialize",
        json={"model_id": folder, "sae_sources": [sae], "sae_source_set": "res-new"},
    )
    assert switched.status_code == 200, switched.text
    assert switched.json() == {"status": "initialized", "model": folder, "sources": ["2-res-new"]}
    assert app.state.engine is not old and old in app.state.retiring  # still finishing
    caps = (await client.get("/v1/capabilities")).json()
    assert caps["model"] == folder and caps["num_layers"] == 3 and caps["sources"] == ["2-res-new"]

    release.set()
    answer = await in_flight  # finished on the old model, with the old model's source
    assert answer.status_code == 200 and answer.json() == expected
    for _ in range(100):
        if not app.state.retiring:
            break
        await asyncio.sleep(0.05)
    assert not app.state.retiring and old.batcher._worker is None  # the old batcher stopped

    new = await client.post("/v1/activation/single", json=_single("2-res-new", folder))
    assert new.status_code == 200 and len(new.json()["activation"]["values"]) > 1
    gone = await client.post("/v1/activation/single", json=_single("2-res-new"))
    assert gone.status_code == 400 and folder in gone.json()["detail"]

    # Neuronpedia's form: the model alone, by query; a new model brings only named sources.
    back = await client.post("/initialize", params={"custom_hf_model_id": MODEL})
    assert back.status_code == 200 and back.json()["model"] == MODEL
    assert back.json()["sources"] == []
    missing = await client.post("/v1/activation/single", json=_single(f"1-{TINY_SET}"))
    assert missing.status_code == 404


async def test_a_request_reaching_a_retired_engine_runs_there_without_restarting_its_batcher(
    own_app: tuple[FastAPI, httpx.AsyncClient],
    tiny_sae_dirs: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race, made deterministic: a request resolves the old engine, /initialize swaps
    and retires it (idle: the request has not reached its batcher yet), then the request
    submits its prompt. It is answered by the old model, and the old batcher stays stopped
    (it used to start again and run until shutdown)."""
    app, client = own_app
    old = app.state.engine
    expected = (await client.post("/v1/activation/single", json=_single(f"1-{TINY_SET}"))).json()
    picked, swapped = asyncio.Event(), asyncio.Event()
    resolve = old.sae

    async def sae_after_the_swap(source_id: str) -> LoadedSae:
        picked.set()
        await swapped.wait()
        return await resolve(source_id)

    monkeypatch.setattr(old, "sae", sae_after_the_swap)
    late = asyncio.create_task(client.post("/v1/activation/single", json=_single(f"1-{TINY_SET}")))
    await picked.wait()
    switched = await client.post("/initialize", json={"sae_sources": [tiny_sae_dirs[0]]})
    assert switched.status_code == 200 and app.state.engine is not old
    retiring = app.state.retiring.get(old)
    if retiring is not None:
        await retiring
    assert old.batcher._worker is None

    def batchers() -> set[asyncio.Task]:
        return {t for t in asyncio.all_tasks() if t.get_name() == "activation-batcher"}

    before = batchers()
    swapped.set()
    answer = await late
    assert answer.status_code == 200 and answer.json() == expected
    assert old.batcher._worker is None and batchers() == before  # no worker came back
    assert old.batcher.batches_run > 1  # the late prompt ran on the old model's batcher


@pytest.mark.parametrize(
    ("params", "body", "detail"),
    [
        ({"custom_hf_model_id": "gpt2"}, None, "'gpt2' is not available on this machine"),
        ({}, {"model_id": "/no/such/folder"}, "not available on this machine"),
        ({}, {"model_id": "/"}, "could not load model '/'"),
        ({}, {"sae_sources": ["/no/such/sae"]}, "could not load model 'tiny-random'"),
        ({"custom_hf_model_id": "gpt2"}, {"model_id": MODEL}, "name different models"),
    ],
)
async def test_a_failed_load_leaves_the_old_model_serving(
    own_app: tuple[FastAPI, httpx.AsyncClient], params: dict, body: dict | None, detail: str
) -> None:
    app, client = own_app
    old = app.state.engine
    r = await client.post("/initialize", params=params, json=body)
    assert r.status_code == 400 and detail in r.json()["detail"], r.text
    assert app.state.engine is old
    still = await client.post("/v1/activation/single", json=_single(f"1-{TINY_SET}"))
    assert still.status_code == 200
    same = await client.post("/initialize")
    assert same.json()["sources"] == [f"0-{TINY_SET}", f"1-{TINY_SET}"]


def test_the_folder_is_a_real_model(other_model: tuple[str, str]) -> None:
    """The saved folder loads like any local model (what /initialize relies on)."""
    from interpedia_runtime.models import available_offline, load_model

    folder, _ = other_model
    assert available_offline(folder) and Path(folder, "config.json").exists()
    assert load_model(folder).n_layers == 3
