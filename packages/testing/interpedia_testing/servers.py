"""Serving an app on 127.0.0.1 from a test: in a thread of the test, or as real services.

`ThreadedServer` runs an ASGI app under uvicorn in a daemon thread with its own event
loop (so its lifespan, engines and clients live on that loop, as in production), for
tests that also reach into the app. `running_services` starts real services as
their own processes (`interpedia-<service> serve`, through the platform's supervisor)
on free ports, waits until each answers /health, and stops them at the end.
"""

import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from interpedia_core.settings import CommonSettings
from interpedia_platform.supervisor import Supervisor, platform_services, service_urls_env
from interpedia_testing.net import free_port

logger = logging.getLogger(__name__)


class ThreadedServer:
    """`with ThreadedServer(app) as server:` serves `app` at `server.url` until the block ends."""

    def __init__(self, app: Any, port: int | None = None, start_timeout: float = 30.0) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start_timeout = start_timeout
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "ThreadedServer":
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:  # the port is open and the lifespan has started
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@contextmanager
def running_services(
    names: list[str], env: Mapping[str, str], log_dir: Path, timeout: float = 300.0
) -> Iterator[dict[str, str]]:
    """Run the named services (`inference`, `autointerp`, `webapi`, ...) with `env` added to
    this process's environment; yields each one's URL. A web API among them is pointed at
    the inference and autointerp services among them. Their logs go to `log_dir`."""
    specs = [s for s in platform_services(CommonSettings()) if s.name in names]
    ports = {s.port_variable: str(free_port()) for s in specs if s.port_variable}
    full_env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",  # the packaged models are local; never ask the hub
        "INTERPEDIA_LOG_LEVEL": "WARNING",
        **env,
        **ports,
    }
    full_env |= service_urls_env(specs, full_env)  # the web API finds the others
    supervisor = Supervisor(specs, full_env, log_dir, echo=logger.info)
    try:
        supervisor.start_all()
        supervisor.wait_healthy(timeout)
        yield {s.name: str(s.url(full_env)) for s in specs if s.port_variable}
    finally:
        supervisor.stop_all()
