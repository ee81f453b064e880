"""Serving a service: one way for all four, with a clear line when the port is taken."""

import socket
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from interpedia_core.errors import ConfigurationError
from interpedia_core.logs import configure_logging
from interpedia_core.settings import ServiceSettings


def check_port_free(host: str, port: int, variable: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise ConfigurationError(
                f"port {port} on {host} is in use; stop what uses it or set {variable}"
            ) from None


def serve(
    create_app: Callable[[ServiceSettings], FastAPI], settings: ServiceSettings, env_prefix: str
) -> None:
    """Run `create_app(settings)` under uvicorn on the settings' host and port."""
    configure_logging(settings.log_level)
    check_port_free(settings.host, settings.port, f"{env_prefix}PORT")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
    )
