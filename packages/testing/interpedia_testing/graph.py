"""Running the graph service from a test: its own environment, real processes, real HTTP.

The graph service cannot be imported by the platform's environment (circuit-tracer pins
transformers 4.57), so both test suites start it the way the supervisor does: its
`interpedia-graph` command from the graph environment's bin/, on the test's database.
"""

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from interpedia_testing.net import free_port, wait_for_http


def graph_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "INTERPEDIA_DATA_DIR": str(data_dir),
        "INTERPEDIA_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        **extra,
    }


def fit_quick_set(
    bin_dir: Path,
    env: dict[str, str],
    name: str,
    out: Path,
    *,
    d_transcoder: int = 128,
    calibration_tokens: int = 2048,
) -> None:
    """`interpedia-graph transcoders init`: a quick set fitted (~20 s of CPU; reused when
    `out` holds one fitted the same way, e.g. from an earlier run) and registered."""
    result = subprocess.run(
        [
            str(bin_dir / "interpedia-graph"),
            "transcoders",
            "init",
            "--name",
            name,
            "--d-transcoder",
            str(d_transcoder),
            "--calibration-tokens",
            str(calibration_tokens),
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise AssertionError(f"transcoders init failed:\n{result.stdout}\n{result.stderr}")


@dataclass
class GraphService:
    """The graph API and its workers, as processes."""

    bin_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    server: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> "GraphService":
        self.server = subprocess.Popen(
            [str(self.bin_dir / "interpedia-graph"), "serve"],
            env=self.env | {"INTERPEDIA_GRAPH_PORT": str(self.port)},
            start_new_session=True,
        )
        self.start_worker()
        wait_for_http(self.url + "/health", timeout=timeout)
        return self

    def start_worker(
        self, *, heartbeat: float = 1.0, stalled_after: float = 30.0
    ) -> subprocess.Popen:
        worker = subprocess.Popen(
            [
                str(self.bin_dir / "interpedia-graph"),
                "worker",
                "--heartbeat",
                str(heartbeat),
                "--stalled-after",
                str(stalled_after),
            ],
            env=self.env,
            start_new_session=True,
        )
        self.workers.append(worker)
        return worker

    def kill_worker(self, worker: subprocess.Popen) -> None:
        """kill -9: the worker cannot release its job (the sweeper of another one will)."""
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        self.workers.remove(worker)

    def stop(self) -> None:
        for process in [*self.workers, self.server]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.workers, self.server]:
            if process is None:
                continue
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.workers.clear()
