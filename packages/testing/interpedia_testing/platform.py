"""Running the whole platform (`interpedia up` or `interpedia demo`) from a test.

The platform gets its own data folder, embedded-database port and service ports, so it never
meets a developer's running Interpedia; the test talks to it only over HTTP.
"""

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from interpedia_testing.net import free_port

SERVICES = ("inference", "autointerp", "trainer", "webapi", "graph")
UP_LINE = "Interpedia is up"


@dataclass
class RunningPlatform:
    process: subprocess.Popen
    ports: dict[str, int]  # service name -> port on 127.0.0.1
    env: dict[str, str]
    output: list[str]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"


def start_platform(
    command: str, data_dir: Path, cwd: Path, extra_env: dict[str, str], timeout: float
) -> RunningPlatform:
    """Start `interpedia COMMAND` and return once it prints that it is up.

    Raises AssertionError with the tail of its output when it exits or times out first.
    """
    ports = {service: free_port() for service in SERVICES}
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {
        "INTERPEDIA_DATA_DIR": str(data_dir),
        "INTERPEDIA_EMBEDDED_DB_PORT": str(free_port()),
        "INTERPEDIA_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        **{f"INTERPEDIA_{s.upper()}_PORT": str(p) for s, p in ports.items()},
        **extra_env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "interpedia_core.cli", command],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        output.append(line)
        if UP_LINE in line:
            return RunningPlatform(process, ports, env, output)
    process.kill()
    raise AssertionError(f"interpedia {command} did not come up:\n" + "".join(output[-60:]))
