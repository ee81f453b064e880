"""A stop request (Ctrl-C, SIGTERM) ends an import within seconds; the rerun resumes it.

The file in hand is abandoned, not failed: its COPY rolls back, it stays to be imported,
and the import is marked `stopped`. Nothing is lost or doubled by the resumed run.
"""

import os
import signal
import sys
from pathlib import Path

import psycopg
from sqlalchemy import func, select
from webapi_factories import write_export

from interpedia_core import stopping
from interpedia_db.models import Activation, ImportFile, ImportJob
from interpedia_formats.locations import Downloaded, LocalLocation
from interpedia_testing.commands import RunningCommand
from interpedia_webapi import feature_import


class _StopAfterDownloading(LocalLocation):
    """Requests the stop once `path` is downloaded: the next safe point is inside its COPY."""

    def __init__(self, root: Path, path: str, token: stopping.StopToken) -> None:
        super().__init__(root)
        self.path, self.token = path, token

    def download(self, path: str, dest: Path, *args, **kwargs) -> Downloaded:
        got = super().download(path, dest, *args, **kwargs)
        if path == self.path:
            self.token.request("stopped by test")
        return got


async def _files(db_sessionmaker, import_id: int) -> dict[str, tuple[str, int | None]]:
    async with db_sessionmaker() as session:
        rows = await session.execute(
            select(ImportFile.path, ImportFile.state, ImportFile.rows_imported).where(
                ImportFile.import_id == import_id
            )
        )
        return {path: (state, rows) for path, state, rows in rows}


async def _activations(db_sessionmaker, source_id: str) -> int:
    async with db_sessionmaker() as session:
        return (
            await session.execute(
                select(func.count())
                .select_from(Activation)
                .where(Activation.source_id == source_id)
            )
        ).scalar_one()


async def test_a_stop_inside_a_files_copy_rolls_it_back_and_the_rerun_completes(
    db_sessionmaker, tmp_path: Path
) -> None:
    export = write_export(tmp_path / "exp", source_id="7-res-stop", n_features=3 * 1024)
    token = stopping.StopToken()

    def factory(location: str) -> LocalLocation:
        return _StopAfterDownloading(Path(location), "activations/batch-1.jsonl.gz", token)

    async with db_sessionmaker.begin() as session:
        job = await feature_import.start_import(session, str(export), location_factory=factory)
    with stopping.stop_scope(token):
        try:
            await feature_import.run_import(
                db_sessionmaker, job.id, work_dir=tmp_path / "work", location_factory=factory
            )
        except stopping.Stopped as exc:
            assert "activations/batch-1.jsonl.gz" in str(exc)
        else:
            raise AssertionError("the import did not stop")

    files = await _files(db_sessionmaker, job.id)
    assert files["activations/batch-1.jsonl.gz"][0] == "downloaded"  # abandoned, not failed
    assert not any(state == "failed" for state, _ in files.values())
    imported = sum(
        rows or 0
        for path, (state, rows) in files.items()
        if path.startswith("activations/") and state == "imported"
    )
    assert await _activations(db_sessionmaker, "7-res-stop") == imported == 1024 * 3
    async with db_sessionmaker() as session:
        stopped = await session.get(ImportJob, job.id)
        assert stopped is not None and stopped.status == "stopped"

    done = await feature_import.run_import(db_sessionmaker, job.id, work_dir=tmp_path / "work")
    assert done.status == "complete" and done.files_failed == 0
    assert await _activations(db_sessionmaker, "7-res-stop") == 3 * 1024 * 3
    async with db_sessionmaker() as session:
        report = await feature_import.verify_import(session, job.id)
    assert report.ok, report.differences


def _imported_activation_files(database_url: str, location: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM import_files f JOIN import_jobs j ON j.id = f.import_id "
            "WHERE j.location = %s AND f.kind = 'activations' AND f.state = 'imported'",
            (location,),
        ).fetchone()
    return row[0] if row else 0


def test_sigint_stops_the_import_command_within_seconds_and_the_rerun_resumes(
    database_url: str, tmp_path: Path
) -> None:
    export = write_export(
        tmp_path / "exp",
        source_id="8-res-sigint",
        n_features=4 * 1024,
        acts_per_feature=3,
        tokens_per_act=16,
    )
    env = os.environ | {"DATABASE_URL": database_url, "INTERPEDIA_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "interpedia_core.cli", "import", str(export)]
    running = RunningCommand(command, env)
    try:
        running.wait_until(
            lambda: _imported_activation_files(database_url, str(export)) >= 1,
            "an activations file to be imported",
            timeout=300,
        )
        code, seconds = running.stop(signal.SIGINT)
    finally:
        running.kill()
    assert code == 128 + signal.SIGINT, running.tail()
    assert seconds < 5, f"took {seconds:.1f}s to stop:\n{running.tail()}"
    assert "stopped by SIGINT" in running.output
    with psycopg.connect(database_url) as conn:
        status, failed = conn.execute(
            "SELECT j.status, count(f.*) FILTER (WHERE f.state = 'failed') FROM import_jobs j "
            "JOIN import_files f ON f.import_id = j.id WHERE j.location = %s GROUP BY j.id",
            (str(export),),
        ).fetchone()
    assert (status, failed) == ("stopped", 0)

    rerun = RunningCommand(command, env)
    assert rerun.finish(timeout=600) == 0, rerun.tail()
    assert "verified: complete" in rerun.output
