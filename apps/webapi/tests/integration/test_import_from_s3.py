"""Importing from a real S3 server (moto on 127.0.0.1), laid out like Neuronpedia's bucket:
`v1/{model}/{source}/` with no manifest and embeddings as pgvector text."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from webapi_factories import as_neuronpedia_dump, rewrite_rows, write_export

from interpedia_db.models import Activation, Explanation, ExplanationEmbedding, ImportFile
from interpedia_testing.s3 import (
    admin_client,
    create_bucket,
    neuronpedia_config_objects,
    neuronpedia_objects,
    put_objects,
)
from interpedia_webapi import feature_import
from interpedia_webapi.settings import WebapiSettings

BUCKET = "np-import-test"
MODEL = "gpt2-small"


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A public bucket with three sources of 1,100 features (two batches of each kind)."""
    client = admin_client(s3_endpoint)
    create_bucket(client, BUCKET, public=True)
    root = tmp_path_factory.mktemp("np")
    objects = neuronpedia_config_objects()
    for source_id in ("9-res-s3", "9-res-https", "9-res-etag"):
        export = as_neuronpedia_dump(write_export(root, MODEL, source_id, n_features=1100))
        objects += neuronpedia_objects(export)
    put_objects(client, BUCKET, objects)
    yield s3_endpoint


async def _run(db_sessionmaker, settings: WebapiSettings, location: str, work: Path):
    async with db_sessionmaker.begin() as session:
        job = await feature_import.start_import(
            session, location, location_factory=settings.open_export
        )
        await feature_import.reset_failed(session, job.id)
    done = await feature_import.run_import(
        db_sessionmaker, job.id, work_dir=work, location_factory=settings.open_export
    )
    return job, done


@pytest.mark.parametrize("form", ["s3", "https"])
async def test_neuronpedia_bucket_imports_whole_and_verifies(
    bucket: str, db_sessionmaker, tmp_path: Path, form: str
) -> None:
    source_id = f"9-res-{form}"
    if form == "s3":  # s3:// against an S3-compatible endpoint, as for MinIO or R2
        settings = WebapiSettings(data_dir=tmp_path, s3_endpoint=bucket)
        location = f"s3://{BUCKET}/v1/{MODEL}/{source_id}"
    else:  # a public bucket's plain URL: ListObjectsV2 over http, unsigned
        settings = WebapiSettings(data_dir=tmp_path, s3_anonymous=True)
        location = f"{bucket}/{BUCKET}/v1/{MODEL}/{source_id}/"
    job, done = await _run(db_sessionmaker, settings, location, tmp_path / "work")
    assert done.status == "complete" and done.files_failed == 0
    assert done.files_total == 4 + 3 * 2  # no manifest; the inference host files are not ours
    async with db_sessionmaker() as session:
        report = await feature_import.verify_import(
            session, job.id, location_factory=settings.open_export
        )
        listed = (
            await session.execute(select(ImportFile).where(ImportFile.import_id == job.id))
        ).scalars()
        embedded = await session.scalar(
            select(func.count())
            .select_from(ExplanationEmbedding)
            .join(Explanation)
            .where(Explanation.source_id == source_id)
        )
        activations = await session.scalar(
            select(func.count()).select_from(Activation).where(Activation.source_id == source_id)
        )
    assert report.ok, report.differences
    assert report.counts["features"] == {"files": 1100, "database": 1100}
    assert activations == 3300 and embedded == 1100
    for file in listed:  # every download matched its listing's size and ETag
        assert file.etag and file.size == file.listed_size


async def test_object_changed_after_listing_fails_then_a_new_listing_imports_it(
    bucket: str, db_sessionmaker, tmp_path: Path
) -> None:
    settings = WebapiSettings(data_dir=tmp_path, s3_endpoint=bucket)
    location = f"s3://{BUCKET}/v1/{MODEL}/9-res-etag"
    async with db_sessionmaker.begin() as session:
        job = await feature_import.start_import(
            session, location, location_factory=settings.open_export
        )
    key = f"v1/{MODEL}/9-res-etag/explanations/batch-1.jsonl.gz"
    client = admin_client(bucket)
    local = tmp_path / "batch-1.jsonl.gz"
    local.write_bytes(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def reword(rows: list[dict]) -> list[dict]:
        return [dict(r, description=r["description"] + " (revised)") for r in rows]

    rewrite_rows(local, reword)
    client.put_object(Bucket=BUCKET, Key=key, Body=local.read_bytes())
    done = await feature_import.run_import(
        db_sessionmaker, job.id, work_dir=tmp_path / "work", location_factory=settings.open_export
    )
    assert done.status == "partial" and done.files_failed == 1
    async with db_sessionmaker() as session:
        failed = await session.get(ImportFile, (job.id, "explanations/batch-1.jsonl.gz"))
    assert "changed since it was listed" in failed.error
    # Importing again lists afresh: the new version is downloaded and imported.
    again, done = await _run(db_sessionmaker, settings, location, tmp_path / "work")
    assert again.id == job.id
    assert done.status == "complete", done
    async with db_sessionmaker() as session:
        report = await feature_import.verify_import(
            session, job.id, location_factory=settings.open_export
        )
    assert report.ok, report.differences
