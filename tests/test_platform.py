"""`interpedia up` (what `make demo` serves): everything starts, answers, and stops on Ctrl-C."""

import json
import signal
from pathlib import Path

import httpx
import psutil
import pytest

from interpedia_testing.platform import start_platform

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def platform(server_root_factory):
    running = start_platform("up", server_root_factory(), ROOT, {}, timeout=300)
    yield running.process, running.ports, running.env
    if running.process.poll() is None:
        running.process.kill()


@pytest.mark.slow
def test_every_service_is_healthy_and_serves_its_committed_spec(platform):
    _, ports, _ = platform
    for service, port in ports.items():
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health", timeout=5).json() == {"status": "ok"}
        served = httpx.get(f"{base}/openapi.json", timeout=5).json()
        committed = json.loads((ROOT / "schemas" / f"{service}.json").read_text())
        assert served == committed, f"{service} serves a spec that differs from schemas/"


@pytest.mark.slow
def test_ctrl_c_stops_everything(platform):
    process, ports, env = platform
    children = psutil.Process(process.pid).children(recursive=True)
    postmaster = Path(env["INTERPEDIA_DATA_DIR"]) / "postgres" / "postmaster.pid"
    pg_pid = int(postmaster.read_text().split()[0])
    assert len(children) >= 5  # four services and a worker

    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)

    _, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, f"left running: {[p.pid for p in alive]}"
    assert not psutil.pid_exists(pg_pid) or psutil.Process(pg_pid).status() == "zombie"
    for port in ports.values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
