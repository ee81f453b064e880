"""The import under damage and contention (issue 12): broken files, clashing ids, two
runs of one job, a database that goes away, and the messages each one gives."""

import asyncio
import contextlib
import gzip
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select
from webapi_factories import IMPORT_RUNNER, as_neuronpedia_dump, rewrite_rows, write_export

from interpedia_core.errors import Conflict, InvalidInput
from interpedia_db.models import Activation, Explanation, ExplanationEmbedding, ImportFile
from interpedia_webapi import feature_import


async def _import(db_sessionmaker, export: Path, work: Path) -> feature_import.ImportProgress:
    async with db_sessionmaker.begin() as session:
        job = await feature_import.start_import(session, str(export))
    return await feature_import.run_import(db_sessionmaker, job.id, work_dir=work)


async def _file(db_sessionmaker, import_id: int, path: str) -> ImportFile:
    async with db_sessionmaker() as session:
        return await session.get(ImportFile, (import_id, path))


async def test_pgvector_text_embeddings_import_like_lists(db_sessionmaker, tmp_path: Path) -> None:
    export = as_neuronpedia_dump(write_export(tmp_path, source_id="1-res-vectext", n_features=40))
    line = gzip.decompress((export / "explanations/batch-0.jsonl.gz").read_bytes()).splitlines()[0]
    assert b'"embedding": "[' in line  # what Neuronpedia's exporter writes
    done = await _import(db_sessionmaker, export, tmp_path / "work")
    assert done.status == "complete" and done.files_failed == 0
    async with db_sessionmaker() as session:
        embedded = await session.scalar(
            select(func.count())
            .select_from(ExplanationEmbedding)
            .join(Explanation)
            .where(Explanation.source_id == "1-res-vectext")
        )
    assert embedded == 40


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (b"", "empty file (0 bytes)"),
        (b'{"modelId": "gpt2-small"}\n', "not a gzip file"),
    ],
    ids=["zero-bytes", "plain-json"],
)
async def test_empty_or_non_gzip_batch_fails_instead_of_importing_nothing(
    db_sessionmaker, tmp_path: Path, damage: bytes, message: str
) -> None:
    source_id = f"2-res-dmg{len(damage)}"
    export = write_export(tmp_path, source_id=source_id, n_features=1100)
    (export / "manifest.json").unlink()  # as in Neuronpedia's bucket: nothing to compare with
    (export / "activations/batch-1.jsonl.gz").write_bytes(damage)
    done = await _import(db_sessionmaker, export, tmp_path / "work")
    assert done.status == "partial" and done.files_failed == 1
    failed = await _file(db_sessionmaker, done.import_id, "activations/batch-1.jsonl.gz")
    assert failed.state == "failed" and message in failed.error
    async with db_sessionmaker() as session:
        report = await feature_import.verify_import(session, done.import_id)
    assert not report.ok
    assert any(d.startswith("activations/batch-1.jsonl.gz: failed") for d in report.differences)


async def test_missing_model_jsonl_is_named_before_anything_is_imported(
    db_sessionmaker, tmp_path: Path
) -> None:
    export = write_export(tmp_path, source_id="3-res-nomodel", n_features=10)
    (export / "model.jsonl").unlink()
    async with db_sessionmaker.begin() as session:
        with pytest.raises(InvalidInput, match=r"has no model\.jsonl"):
            await feature_import.start_import(session, str(export))


async def test_rows_of_a_missing_feature_are_named_by_file_line_and_index(
    db_sessionmaker, tmp_path: Path
) -> None:
    export = write_export(tmp_path, source_id="4-res-orphan", n_features=30)
    (export / "manifest.json").unlink()
    rewrite_rows(
        export / "features/batch-0.jsonl.gz", lambda rows: [r for r in rows if r["index"] != "25"]
    )
    done = await _import(db_sessionmaker, export, tmp_path / "work")
    assert done.files_failed == 2
    activations = await _file(db_sessionmaker, done.import_id, "activations/batch-0.jsonl.gz")
    explanations = await _file(db_sessionmaker, done.import_id, "explanations/batch-0.jsonl.gz")
    # 3 activations a feature: feature 25's first is on line 76; its explanation on line 26.
    assert activations.error == (
        "activations/batch-0.jsonl.gz line 76: activation of feature index 25, which "
        "gpt2-small/4-res-orphan does not have (no row for it in features/)"
    )
    assert explanations.error.startswith(
        "explanations/batch-0.jsonl.gz line 26: explanation of feature index 25"
    )


async def test_rows_whose_ids_another_model_holds_are_counted_and_fail_verification(
    db_sessionmaker, tmp_path: Path
) -> None:
    # Same source id under two models: write_export gives both the same row ids.
    first = write_export(tmp_path / "a", "model-a", "5-res-twin", n_features=20)
    second = write_export(tmp_path / "b", "model-b", "5-res-twin", n_features=20)
    assert (await _import(db_sessionmaker, first, tmp_path / "work")).status == "complete"
    done = await _import(db_sessionmaker, second, tmp_path / "work")
    assert done.files_failed == 0
    assert done.status == "partial" and done.rows_skipped == 60 + 20
    note = (await _file(db_sessionmaker, done.import_id, "activations/batch-0.jsonl.gz")).error
    assert note.startswith(
        "activations/batch-0.jsonl.gz: 60 of 60 rows skipped: their ids are already taken by "
        "another model or source (id '5-res-twin-"
    )
    assert note.endswith("is model-a/5-res-twin's)")
    async with db_sessionmaker() as session:
        report = await feature_import.verify_import(session, done.import_id)
        own = await session.scalar(
            select(func.count()).select_from(Activation).where(Activation.model_id == "model-b")
        )
    assert own == 0
    assert not report.ok
    assert "activations: 60 of 60 rows were skipped" in "\n".join(report.differences)


async def test_a_second_run_of_a_running_job_is_told_plainly(
    database_url: str, db_sessionmaker, tmp_path: Path
) -> None:
    export = write_export(tmp_path, source_id="6-res-twice", n_features=1100, tokens_per_act=4)
    async with db_sessionmaker.begin() as session:
        job = await feature_import.start_import(session, str(export))
    script = tmp_path / "runner.py"
    script.write_text(IMPORT_RUNNER)
    work = tmp_path / "work"
    first = subprocess.Popen(  # noqa: ASYNC220 - waited for below, in a thread
        [sys.executable, str(script), database_url, str(job.id), str(work), "2.0"]
    )
    try:
        for _ in range(300):
            await asyncio.sleep(0.1)
            async with db_sessionmaker() as session:
                progress = await feature_import.get_progress(session, job.id)
            if progress.status == "running" and progress.files_done >= 1:
                break
        # The same job in this process, and the same location from the CLI: both refused.
        with pytest.raises(Conflict, match="already being run by another process"):
            await feature_import.run_import(db_sessionmaker, job.id, work_dir=work)
        env = os.environ | {"DATABASE_URL": database_url, "INTERPEDIA_DATA_DIR": str(tmp_path)}
        second = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "interpedia_core.cli", "import", str(export)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"import {job.id} is already being run by another process" in second.stderr
        assert "Traceback" not in second.stdout + second.stderr
        assert await asyncio.to_thread(first.wait, 180) == 0
    finally:
        if first.poll() is None:
            first.kill()
    async with db_sessionmaker() as session:
        progress = await feature_import.get_progress(session, job.id)
        report = await feature_import.verify_import(session, job.id)
    assert progress.status == "complete", progress
    assert report.ok, report.differences


class CuttingProxy:
    """A TCP proxy to Postgres that drops every connection, and refuses new ones, as soon
    as a client sends `pattern`: the database going away mid-statement."""

    def __init__(self, target_port: int, pattern: bytes) -> None:
        self.target_port = target_port
        self.pattern = pattern
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.cut.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, watch: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if watch and self.pattern in data:
                    self.drop()
                    return
                dst.sendall(data)
        except OSError:
            pass

    def drop(self) -> None:
        self.cut.set()
        self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_lost_database_is_said_plainly_and_leaves_the_file_to_retry(
    database_url: str, tmp_path: Path
) -> None:
    export = write_export(tmp_path, source_id="7-res-gone", n_features=100)
    port = int(database_url.rsplit(":", 1)[1].split("/", 1)[0])
    proxy = CuttingProxy(port, b'COPY "activations"')
    via_proxy = database_url.replace(f":{port}/", f":{proxy.port}/")
    command = [sys.executable, "-m", "interpedia_core.cli", "import", str(export)]
    env = os.environ | {"DATABASE_URL": via_proxy, "INTERPEDIA_DATA_DIR": str(tmp_path)}
    cut = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert proxy.cut.is_set()
    assert cut.returncode == 2, cut.stdout + cut.stderr
    assert "the database went away while importing activations/batch-0.jsonl.gz" in cut.stderr
    assert "the file is left to retry" in cut.stderr
    assert "Traceback" not in cut.stdout + cut.stderr

    async def states() -> tuple[dict[str, str], str]:
        from interpedia_db.connect import create_engine, create_sessionmaker

        engine = create_engine(database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                job = (await feature_import.list_imports(session))[0]
                files = (
                    await session.execute(
                        select(ImportFile.path, ImportFile.state).where(
                            ImportFile.import_id == job.id
                        )
                    )
                ).all()
                progress = await feature_import.get_progress(session, job.id)
        finally:
            await engine.dispose()
        return dict(files), progress.status

    files, status = asyncio.run(states())
    assert files["activations/batch-0.jsonl.gz"] == "downloaded"  # not failed: retried next
    assert "failed" not in files.values()
    assert status == "interrupted"
    env["DATABASE_URL"] = database_url
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "verified: complete" in again.stdout
