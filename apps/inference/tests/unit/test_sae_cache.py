"""A cache miss reads the SAE in a thread (the event loop keeps serving), once for concurrent
misses; /v1/capabilities says what the server serves."""

import asyncio
import threading
import time
from pathlib import Path

import httpx
from fastapi import FastAPI

from interpedia_runtime.saes import read_folder_spec, save_random_sae


async def test_a_miss_loads_off_the_event_loop_and_only_once(
    tiny_app: tuple[FastAPI, httpx.AsyncClient], sae_root: Path, monkeypatch
) -> None:
    app, client = tiny_app
    engine = app.state.engine
    registry = engine.registry
    folder = save_random_sae(
        sae_root / "tiny-l1-pre", d_in=64, d_sae=32, hook_name="blocks.1.hook_resid_pre", seed=5
    )
    spec = registry.add(read_folder_spec(folder, "res-late"))
    loads: list[threading.Thread] = []
    real_load = registry._load

    def slow_load(spec):  # a big SAE read from a slow disk
        loads.append(threading.current_thread())
        time.sleep(0.6)
        return real_load(spec)

    monkeypatch.setattr(registry, "_load", slow_load)
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:  # what other requests see of the loop meanwhile
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(0.01)
            gaps.append(loop.time() - last)
            last = loop.time()

    ticker = asyncio.create_task(tick())
    try:
        saes = await asyncio.gather(*(engine.sae(spec.source_id) for _ in range(4)))
        health = await client.get("/health")  # served while nothing loads
    finally:
        done.set()
        await ticker
        registry.specs.pop(spec.source_id)
        with registry._lock:
            registry._loaded.pop(spec.source_id, None)
    assert len(loads) == 1 and loads[0] is not threading.main_thread()
    assert all(sae is saes[0] for sae in saes) and saes[0].d_sae == 32
    assert max(gaps) < 0.3, max(gaps)  # the 0.6 s load never held the loop
    assert health.status_code == 200


async def test_capabilities_name_the_served_model_and_sources(
    tiny_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = tiny_app
    response = await client.get("/v1/capabilities")
    assert response.status_code == 200
    data = response.json()
    assert data["model"] == "tiny-random" and "tiny-random" in data["model_names"]
    assert data["sae_sets"] == ["res-test"]
    assert data["sources"] == ["0-res-test", "1-res-test"]
    assert data["token_limit"] == 64 and data["max_completion_tokens"] == 40
