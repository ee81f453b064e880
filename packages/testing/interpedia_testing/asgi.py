"""Driving an app in-process: its lifespan runs, requests go through httpx over ASGI, or
uvicorn serves it on loopback from a thread."""

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
from fastapi import FastAPI


@asynccontextmanager
async def app_client(app: FastAPI, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=headers
        ) as client:
            yield client


@contextmanager
def served(app: FastAPI, ready_timeout: float = 120.0) -> Iterator[str]:
    """Serve `app` with uvicorn on a free 127.0.0.1 port in a thread; yield its URL once
    /health answers 200. The server runs its own event loop, so its lifespan opens its
    own database engine and clients, as in production."""
    import uvicorn

    from interpedia_testing.net import free_port, wait_for_http

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", timeout=ready_timeout)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
