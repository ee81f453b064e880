"""Small networking helpers for tests: free ports, waiting for a server to answer."""

import socket
import time

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60.0, expect: int = 200) -> httpx.Response:
    """Poll `url` until it answers `expect`; raise with the last answer on timeout."""
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == expect:
                return response
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer {expect} within {timeout:.0f}s ({last})")
