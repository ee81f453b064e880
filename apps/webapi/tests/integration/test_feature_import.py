"""The admin import against real Postgres: complete, resumable, verified, atomic per file."""

import asyncio
import gzip
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from webapi_factories import IMPORT_RUNNER, write_export

from interpedia_db.models import Activation, Explanation, ExplanationEmbedding, Feature, ImportFile
from interpedia_webapi import feature_import


async def _count(session, table, source_id: str) -> int:
    return (
        await session.execute(
            select(func.count()).select_from(table).where(table.source_id == source_id)
        )
    ).scalar_one()


async def test_import_then_verify_then_rerun_adds_nothing(db_sessionmaker, tmp_path: Path) -> None:
    export = write_export(tmp_path / "exp", source_id="1-res-imp", n_features=1100)
    async with db_sessionmaker.begin() as session:
        job = await feature_import.start_import(session, str(export))
    seen = []

    async def on_progress(progress: feature_import.ImportProgress) -> None:
        seen.append(progress.files_done)

    done = await feature_import.run_import(
        db_sessionmaker, job.id, work_dir=tmp_path / "work", on_progress=on_progress
    )
    assert done.status == "complete" and done.files_failed == 0
    assert seen == sorted(seen) and seen[-1] == done.files_total
    async with db_sessionmaker() as session:
        assert await _count(session, Feature, "1-res-imp") == 1100
        assert await _count(session, Activation, "1-res-imp") == 3300
        assert await _count(session, Explanation, "1-res-imp") == 1100
        embeddings = (
            await session.execute(
                select(func.count())
                .select_from(ExplanationEmbedding)
                .join(Explanation)
                .where(Explanation.source_id == "1-res-imp")
            )
        ).scalar_one()
        assert embeddings == 1100
        report = await feature_import.verify_import(session, job.id)
    assert report.ok, report.differences
    assert report.counts["activations"] == {"files": 3300, "database": 3300}

    # Importing the same place again makes a new job that inserts nothing twice.
    async with db_sessionmaker.begin() as session:
        again = await feature_import.start_import(session, str(export))
    assert again.id != job.id
    await feature_import.run_import(db_sessionmaker, again.id, work_dir=tmp_path / "work")
    async with db_sessionmaker() as session:
        assert await _count(session, Activation, "1-res-imp") == 3300
        assert await _count(session, Explanation, "1-res-imp") == 1100


async def test_malformed_file_fails_alone_without_partial_rows(
    db_sessionmaker, tmp_path: Path
) -> None:
    export = write_export(tmp_path / "exp", source_id="2-res-bad", n_features=1100)
    bad = export / "activations" / "batch-1.jsonl.gz"
    lines = gzip.decompress(bad.read_bytes()).splitlines()
    lines[50] = b'{"modelId": "gpt2-small", "layer": "2-res-bad", "index": "1030", "tokens": ['
    bad.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    async with db_sessionmaker.begin() as session:
        job = await feature_import.start_import(session, str(export))
    done = await feature_import.run_import(db_sessionmaker, job.id, work_dir=tmp_path / "work")
    assert done.status == "partial" and done.files_failed == 1
    async with db_sessionmaker() as session:
        failed = (
            await session.execute(
                select(ImportFile).where(
                    ImportFile.import_id == job.id, ImportFile.state == "failed"
                )
            )
        ).scalar_one()
        # The download's checksum disagrees with the manifest written before we broke it.
        assert failed.path == "activations/batch-1.jsonl.gz"
        assert "batch-1.jsonl.gz" in failed.error
        n = (
            await session.execute(
                select(func.count())
                .select_from(Activation)
                .where(Activation.source_id == "2-res-bad", Activation.index >= 1024)
            )
        ).scalar_one()
        assert n == 0
        report = await feature_import.verify_import(session, job.id)
    assert not report.ok
    assert any("batch-1.jsonl.gz: failed" in d for d in report.differences)


@pytest.mark.parametrize("kind", ["explanations", "activations"])
async def test_malformed_line_names_file_and_line(
    db_sessionmaker, tmp_path: Path, kind: str
) -> None:
    source_id = f"3-res-bad{kind[0]}"
    export = write_export(tmp_path / "exp", source_id=source_id, n_features=20)
    (export / "manifest.json").unlink()  # no manifest: the parser must find the bad line
    bad = export / kind / "batch-0.jsonl.gz"
    lines = gzip.decompress(bad.read_bytes()).splitlines()
    lines[6] = b"{oops"
    bad.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    async with db_sessionmaker.begin() as session:
        job = await feature_import.start_import(session, str(export))
    await feature_import.run_import(db_sessionmaker, job.id, work_dir=tmp_path / "work")
    async with db_sessionmaker() as session:
        failed = (
            await session.execute(
                select(ImportFile).where(
                    ImportFile.import_id == job.id, ImportFile.state == "failed"
                )
            )
        ).scalar_one()
        assert failed.error.startswith(f"{kind}/batch-0.jsonl.gz line 7: not valid JSON")
        explanations = await _count(session, Explanation, source_id)
        activations = await _count(session, Activation, source_id)
    assert (explanations, activations) == ((0, 60) if kind == "explanations" else (20, 0))


async def test_kill_9_mid_import_then_rerun_loses_nothing_and_duplicates_nothing(
    database_url: str, db_sessionmaker, tmp_path: Path
) -> None:
    export = write_export(
        tmp_path / "exp",
        source_id="4-res-kill",
        n_features=3 * 1024,
        acts_per_feature=2,
        tokens_per_act=8,
        embedding_dims=256,
    )
    async with db_sessionmaker.begin() as session:
        job = await feature_import.start_import(session, str(export))
    script = tmp_path / "runner.py"
    script.write_text(IMPORT_RUNNER)
    proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; the test kills it
        [sys.executable, str(script), database_url, str(job.id), str(tmp_path / "work"), "0.3"]
    )
    try:
        for _ in range(600):  # wait until some, but not all, batch files are in
            await asyncio.sleep(0.1)
            async with db_sessionmaker() as session:
                done = (
                    await session.execute(
                        select(func.count())
                        .select_from(ImportFile)
                        .where(
                            ImportFile.import_id == job.id,
                            ImportFile.state == "imported",
                            ImportFile.kind == "activations",
                        )
                    )
                ).scalar_one()
            if done >= 2:
                break
        assert proc.poll() is None, "the import finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    async with db_sessionmaker() as session:
        states = dict(
            (
                await session.execute(
                    select(ImportFile.state, func.count())
                    .where(ImportFile.import_id == job.id)
                    .group_by(ImportFile.state)
                )
            ).all()
        )
    assert states.get("listed", 0) + states.get("downloaded", 0) > 0

    # Resume: the same location gives back the same (unfinished) job.
    async with db_sessionmaker.begin() as session:
        resumed = await feature_import.start_import(session, str(export))
    assert resumed.id == job.id
    done = await feature_import.run_import(db_sessionmaker, job.id, work_dir=tmp_path / "work")
    assert done.status == "complete"
    async with db_sessionmaker() as session:
        assert await _count(session, Feature, "4-res-kill") == 3 * 1024
        assert await _count(session, Activation, "4-res-kill") == 2 * 3 * 1024
        assert await _count(session, Explanation, "4-res-kill") == 3 * 1024
        dupes = (
            await session.execute(
                text(
                    "SELECT count(*) FROM (SELECT index, tokens FROM activations "
                    "WHERE source_id = '4-res-kill' GROUP BY index, tokens, data_index "
                    "HAVING count(*) > 1) d"
                )
            )
        ).scalar_one()
        assert dupes == 0
        report = await feature_import.verify_import(session, job.id)
    assert report.ok, report.differences


async def test_unreadable_location_is_invalid_input(db_sessionmaker, tmp_path: Path) -> None:
    from interpedia_core.errors import InvalidInput

    async with db_sessionmaker.begin() as session:
        with pytest.raises(InvalidInput, match="cannot read the export"):
            await feature_import.start_import(session, str(tmp_path / "missing"))


def test_cli_import_shows_progress_and_verifies(database_url: str, tmp_path: Path) -> None:
    export = write_export(tmp_path / "exp", source_id="5-res-cli", n_features=30)
    env = os.environ | {"DATABASE_URL": database_url, "INTERPEDIA_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "interpedia_core.cli", "import", str(export)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"complete: (\d+)/\1 files, 154 rows", result.stdout), result.stdout
    assert "verified: complete" in result.stdout
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "verified: complete" in again.stdout
    missing = subprocess.run(
        [*command[:-1], str(tmp_path / "nope")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "cannot read the export" in missing.stderr


async def test_awkward_tokens_survive_the_copy_exactly(db_sessionmaker, tmp_path: Path) -> None:
    from interpedia_formats.neuronpedia_export import (
        ExportWriter,
        NpActivation,
        NpExplanation,
        NpModel,
        NpNeuron,
        NpSource,
        NpSourceSet,
    )

    tokens = [
        "\t",
        "\n",
        "\r\n",
        "\\",
        '"',
        "'",
        "{",
        "}",
        ",",
        "NULL",
        "\\N",
        "",
        " ",
        "é🙂",
        '{"a",\\b}',
        "\x00x"[1:],
        "a\tb\\n",
    ]
    values = [float(i) / 3 for i in range(len(tokens))]
    with ExportWriter(tmp_path, "awk-model", "0-awk") as writer:
        writer.write_model(NpModel(id="awk-model", layers=1))
        writer.write_sourceset(NpSourceSet(modelId="awk-model", name="awk"))
        writer.write_source(NpSource(modelId="awk-model", id="0-awk", setName="awk"))
        writer.write_feature(
            NpNeuron(
                modelId="awk-model",
                layer="0-awk",
                index=0,
                pos_str=tokens,
                pos_values=values,
                maxActApprox=1e-30,
            )
        )
        writer.write_activation(
            NpActivation(
                id="a\tb",
                modelId="awk-model",
                layer="0-awk",
                index=0,
                tokens=tokens,
                values=values,
                maxValue=values[-1],
                maxValueTokenIndex=len(values) - 1,
                dataSource="x\\y\nz",
            )
        )
        writer.write_explanation(
            NpExplanation(
                modelId="awk-model", layer="0-awk", index=0, description='says "hi"\tand\\ bye'
            )
        )
    async with db_sessionmaker.begin() as session:
        job = await feature_import.start_import(session, str(tmp_path / "awk-model" / "0-awk"))
    done = await feature_import.run_import(db_sessionmaker, job.id, work_dir=tmp_path / "w")
    assert done.status == "complete", done
    async with db_sessionmaker() as session:
        activation = (
            await session.execute(select(Activation).where(Activation.source_id == "0-awk"))
        ).scalar_one()
        feature = await session.get(Feature, ("awk-model", "0-awk", 0))
        explanation = (
            await session.execute(select(Explanation).where(Explanation.source_id == "0-awk"))
        ).scalar_one()
    assert activation.tokens == tokens and activation.external_id == "a\tb"
    assert activation.values == pytest.approx(values)
    assert activation.data_source == "x\\y\nz"
    assert feature.pos_str == tokens and feature.max_act == pytest.approx(1e-30)
    assert explanation.description == 'says "hi"\tand\\ bye'
