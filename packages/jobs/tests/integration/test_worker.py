"""Jobs deferred by one process run on worker processes, and survive a worker's kill -9."""

import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from interpedia_jobs.queue import create_job_app, defer_job


def _start_worker(database_url: str, name: str) -> subprocess.Popen:
    env = os.environ | {"DATABASE_URL": database_url, "INTERPEDIA_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "interpedia_core.cli",
            "worker",
            "--name",
            name,
            "--heartbeat",
            "0.5",
            "--stalled-after",
            "3",
        ],
        env=env,
        start_new_session=True,
    )


def _job(database_url: str, job_id: int) -> tuple[str, int, int | None]:
    with psycopg.connect(database_url) as conn:
        status, attempts = conn.execute(
            "SELECT status, attempts FROM procrastinate.procrastinate_jobs WHERE id = %s",
            (job_id,),
        ).fetchone()
        progress = conn.execute(
            "SELECT done FROM job_progress WHERE job_id = %s", (job_id,)
        ).fetchone()
    return status, attempts, progress[0] if progress else None


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


async def _defer_probe(database_url: str, seconds: float) -> int:
    app = create_job_app(database_url, load_tasks=False)  # defers by name: no task code needed
    async with app.open_async():
        return await defer_job(app, "platform:probe", queue="platform", seconds=seconds)


async def test_job_runs_on_a_worker_process(database_url):
    job_id = await _defer_probe(database_url, 0)
    worker = _start_worker(database_url, "w-plain")
    try:
        _wait_for(lambda: _job(database_url, job_id)[0] == "succeeded", 300, "the job to succeed")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    assert _job(database_url, job_id)[2] == 1  # the task's own progress report landed


async def test_job_of_a_killed_worker_is_retried_and_finished(database_url):
    job_id = await _defer_probe(database_url, 4)
    first = _start_worker(database_url, "w-doomed")
    _wait_for(lambda: (_job(database_url, job_id)[2] or 0) >= 1, 300, "the job to make progress")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    status, attempts, _ = _job(database_url, job_id)
    assert status == "doing"  # the dead worker could not release it

    second = _start_worker(database_url, "w-rescuer")
    try:
        _wait_for(lambda: _job(database_url, job_id)[0] == "succeeded", 300, "the retried job")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    status, attempts_after, done = _job(database_url, job_id)
    assert attempts_after > attempts and done == 4


async def test_sigterm_stops_a_worker_within_seconds_and_its_job_is_retried(database_url):
    job_id = await _defer_probe(database_url, 30)
    first = _start_worker(database_url, "w-stopped")
    _wait_for(lambda: (_job(database_url, job_id)[2] or 0) >= 1, 300, "the job to make progress")
    started = time.monotonic()
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=60)
    stopped_after = time.monotonic() - started
    # Procrastinate alone waits for the running job (here 30 s); the stop reaches the job.
    assert stopped_after < 5, f"the worker took {stopped_after:.1f}s to stop"
    status, attempts, done = _job(database_url, job_id)
    assert status == "todo" and done is not None and done < 30  # back in the queue, not failed

    second = _start_worker(database_url, "w-resumer")
    try:
        _wait_for(lambda: _job(database_url, job_id)[0] == "succeeded", 300, "the requeued job")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert _job(database_url, job_id)[1] >= attempts  # a stop spends no attempt it needs
