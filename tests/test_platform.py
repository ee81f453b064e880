"""`interpedia up` (what `make demo` serves): everything starts, answers, and stops on Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from interpedia_testing.net import free_port

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("inference", "autointerp", "trainer", "webapi")


@pytest.fixture(scope="module")
def platform(server_root_factory):
    data_dir = server_root_factory()
    ports = {service: free_port() for service in SERVICES}
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {
        "INTERPEDIA_DATA_DIR": str(data_dir),
        "INTERPEDIA_EMBEDDED_DB_PORT": str(free_port()),
        "INTERPEDIA_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        **{f"INTERPEDIA_{s.upper()}_PORT": str(p) for s, p in ports.items()},
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "interpedia_core.cli", "up"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        output.append(line)
        if "Interpedia is up" in line:
            break
    else:
        process.kill()
    if process.poll() is not None:
        pytest.fail("interpedia up exited early:\n" + "".join(output))
    yield process, ports, env
    if process.poll() is None:
        process.kill()


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
