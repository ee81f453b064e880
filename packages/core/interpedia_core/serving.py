"""Serving a service: one way for all, with a clear line when the port is taken or an
internal service would be open to strangers."""

import ipaddress
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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def check_secret_for_host(settings: ServiceSettings, env_prefix: str) -> None:
    """An internal service reachable from other machines must require the shared secret.

    On loopback (`make demo`, `interpedia up`) only this machine can call it, so no
    secret is needed; anywhere else anyone who can reach the port could queue training
    runs or read the model, so the service refuses to start without one.
    """
    if settings.secret or is_loopback(settings.host):
        return
    raise ConfigurationError(
        f"{env_prefix}HOST is {settings.host}: an internal service listening beyond "
        "127.0.0.1 needs a secret. Set INTERPEDIA_SECRET (or INTERPEDIA_SECRET_FILE, or "
        f"{env_prefix}SECRET) to a long random value, and give the web API the same one."
    )


def serve(
    create_app: Callable[[ServiceSettings], FastAPI],
    settings: ServiceSettings,
    env_prefix: str,
    *,
    internal: bool,
) -> None:
    """Run `create_app(settings)` under uvicorn on the settings' host and port.

    An `internal` service (everything but the public web API) refuses to listen beyond
    loopback without a secret (`check_secret_for_host`).
    """
    configure_logging(settings.log_level)
    if internal:
        check_secret_for_host(settings, env_prefix)
    check_port_free(settings.host, settings.port, f"{env_prefix}PORT")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
    )
