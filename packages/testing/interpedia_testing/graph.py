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

import psycopg
from psycopg.types.json import Jsonb

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

    def start(self, timeout: float = 120.0, *, worker: bool = True) -> "GraphService":
        """Start the API and (unless `worker` is False: jobs stay where a test puts them)
        one worker."""
        self.server = subprocess.Popen(
            [str(self.bin_dir / "interpedia-graph"), "serve"],
            env=self.env | {"INTERPEDIA_GRAPH_PORT": str(self.port)},
            start_new_session=True,
        )
        if worker:
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


# --- graph jobs at a chosen state, for the tests of what pages show of them -------------

GRAPH_TASK = "graph:generate_graph"  # interpedia_graph.generation.TASK (another environment)
# Procrastinate's triggers name its tables unqualified (interpedia_jobs.queue does the same).
_JOBS_OPTIONS = "-c search_path=procrastinate,public"


def queue_graph_job(database_url: str, model_id: str, slug: str) -> int:
    """A waiting graph job, as the graph service queues it (only a graph worker on this
    database would take it); its id."""
    request = {
        "model_id": model_id,
        "transcoder_set": "tc-test",
        "slug": slug,
        "prompt": "The capital of France is",
        "options": {},
    }
    with psycopg.connect(database_url, options=_JOBS_OPTIONS) as conn:
        (job_id,) = conn.execute(
            "INSERT INTO procrastinate.procrastinate_jobs (queue_name, task_name, args) "
            "VALUES ('graph', %s, %s) RETURNING id",
            (GRAPH_TASK, Jsonb({"request": request})),
        ).fetchone()
    return job_id


def report_graph_job(
    database_url: str,
    job_id: int,
    status: str,
    *,
    done: int = 0,
    total: int | None = None,
    message: str = "",
    seconds_ago: float = 0.0,
    stored: bool = False,
) -> None:
    """Move a graph job to `status` with the progress its worker would report (that long
    ago); `stored`: with the graph row it stores on success."""
    with psycopg.connect(database_url, options=_JOBS_OPTIONS) as conn:
        (args,) = conn.execute(
            "UPDATE procrastinate.procrastinate_jobs SET status = %s WHERE id = %s RETURNING args",
            (status, job_id),
        ).fetchone()
        conn.execute(
            "INSERT INTO job_progress (job_id, done, total, message, updated_at) "
            "VALUES (%(id)s, %(done)s, %(total)s, %(message)s, "
            "        now() - make_interval(secs => %(ago)s)) "
            "ON CONFLICT (job_id) DO UPDATE SET done = excluded.done, total = excluded.total, "
            "message = excluded.message, updated_at = excluded.updated_at",
            {"id": job_id, "done": done, "total": total, "message": message, "ago": seconds_ago},
        )
        if stored:
            request = args["request"]
            conn.execute(
                "INSERT INTO graphs (id, model_id, slug, source_set_name, prompt, n_nodes, "
                "n_links, job_id, data_gzip) VALUES (%s, %s, %s, %s, %s, 3, 2, %s, '')",
                (
                    f"g{job_id}",
                    request["model_id"],
                    request["slug"],
                    request["transcoder_set"],
                    request["prompt"],
                    job_id,
                ),
            )
