"""S3 locations against a real S3 server (moto, its own process on 127.0.0.1).

The bucket is laid out like Neuronpedia's public `neuronpedia-datasets`: no manifest,
`v1/{model}/{source}/` with the exporter's file names, `v1/config/`, and one source
of 1,048,576 features whose 1,024 feature batches alone take the listing past the
1,000 keys S3 returns a page.
"""

import gzip
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from formats_factories import MODEL, SOURCE, write_export

from interpedia_formats.locations import (
    LocationError,
    S3Location,
    S3Options,
    discover_sources,
    open_location,
)
from interpedia_formats.neuronpedia_export import iter_rows
from interpedia_testing.s3 import (
    NEURONPEDIA_BUCKET,
    admin_client,
    create_bucket,
    neuronpedia_config_objects,
    neuronpedia_objects,
    put_objects,
)

BIG_MODEL, BIG_SOURCE = "gemma-2-9b", "20-gemmascope-res-1m"
BIG_BATCHES = 1024  # 1,048,576 features / 1,024 per batch
OTHER_SOURCES = [(MODEL, "8-res-jb"), ("pythia-70m-deduped", "3-res-sm")]
EXPORT_KEYS = 4 + 3 * 3 + 2  # config rows, 3 batches of each kind, inference host files


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The public bucket; yields the folder of the 6-res-jb export uploaded to it."""
    client = admin_client(s3_endpoint)
    create_bucket(client, NEURONPEDIA_BUCKET, public=True)
    root = tmp_path_factory.mktemp("np")
    export = write_export(root / "a", n_features=2100)  # batches 0, 1, 2 of each kind
    objects = neuronpedia_config_objects() + neuronpedia_objects(export)
    for model_id, source_id in OTHER_SOURCES:
        objects += [
            (key.replace(f"/{MODEL}/{SOURCE}/", f"/{model_id}/{source_id}/"), data)
            for key, data in objects
            if f"/{MODEL}/{SOURCE}/" in key
        ]
    big = f"v1/{BIG_MODEL}/{BIG_SOURCE}"
    objects += [(f"{big}/{name}", b"{}\n") for name in ("model.jsonl", "source.jsonl")]
    objects += [
        (f"{big}/features/batch-{n}.jsonl.gz", gzip.compress(b"{}\n")) for n in range(BIG_BATCHES)
    ]
    put_objects(client, NEURONPEDIA_BUCKET, objects)
    yield export


def options(endpoint: str, **kwargs: object) -> S3Options:
    return S3Options(endpoint_url=endpoint, **kwargs)  # type: ignore[arg-type]


def test_s3_source_without_manifest_lists_and_downloads(
    bucket: Path, s3_endpoint: str, tmp_path: Path
) -> None:
    location = open_location(
        f"s3://{NEURONPEDIA_BUCKET}/v1/{MODEL}/{SOURCE}", s3=options(s3_endpoint)
    )
    assert isinstance(location, S3Location)
    files = location.list_files()
    expected = sorted(
        p.relative_to(bucket).as_posix()
        for p in bucket.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    )
    assert sorted(f.path for f in files) == expected  # the inference host files are not ours
    assert [f.path for f in files][:4] == [
        "release.jsonl",
        "model.jsonl",
        "sourceset.jsonl",
        "source.jsonl",
    ]
    listed = {f.path: f for f in files}["activations/batch-1.jsonl.gz"]
    data = (bucket / "activations/batch-1.jsonl.gz").read_bytes()
    assert listed.size == len(data) and listed.etag == f'"{hashlib.md5(data).hexdigest()}"'
    got = location.download(listed.path, tmp_path / "a.gz", expected=listed)
    assert got.sha256 == hashlib.sha256(data).hexdigest()
    with location.open("source.jsonl") as stream:  # plain jsonl, read line by line
        assert [row.id for _, row in iter_rows(stream, "source.jsonl")] == [SOURCE]


def test_listing_follows_pages_past_1000_keys(bucket: Path, s3_endpoint: str) -> None:
    location = open_location(
        f"s3://{NEURONPEDIA_BUCKET}/v1/{BIG_MODEL}/{BIG_SOURCE}/", s3=options(s3_endpoint)
    )
    files = location.list_files()
    assert len(files) == 2 + BIG_BATCHES > 1000
    assert files[-1].path == f"features/batch-{BIG_BATCHES - 1}.jsonl.gz"  # numeric order


def test_https_url_of_the_bucket_is_listed_as_s3(bucket: Path, s3_endpoint: str) -> None:
    """A plain (path-style) URL of a public bucket: ListObjectsV2 over http, unsigned."""
    url = f"{s3_endpoint}/{NEURONPEDIA_BUCKET}/v1/{MODEL}/{SOURCE}/"
    location = open_location(url, s3=S3Options(anonymous=True))
    assert isinstance(location, S3Location)
    assert len(location.list_files()) == EXPORT_KEYS - 2
    with location.open("features/batch-2.jsonl.gz") as stream:
        assert sum(1 for _ in iter_rows(stream, "features/batch-2.jsonl.gz")) == 2100 - 2048


def test_discover_walks_models_and_sources(bucket: Path, s3_endpoint: str) -> None:
    found = discover_sources(f"s3://{NEURONPEDIA_BUCKET}/v1", s3=options(s3_endpoint))
    assert [(m, s) for m, s, _ in found] == sorted(
        [(MODEL, SOURCE), (BIG_MODEL, BIG_SOURCE), *OTHER_SOURCES]
    )
    assert (MODEL, SOURCE, f"s3://{NEURONPEDIA_BUCKET}/v1/{MODEL}/{SOURCE}") in found
    whole_bucket = discover_sources(f"s3://{NEURONPEDIA_BUCKET}", s3=options(s3_endpoint))
    assert [(m, s) for m, s, _ in whole_bucket] == [(m, s) for m, s, _ in found]
    assert (MODEL, SOURCE, f"s3://{NEURONPEDIA_BUCKET}/v1/{MODEL}/{SOURCE}") in whole_bucket
    one_model = discover_sources(f"s3://{NEURONPEDIA_BUCKET}/v1/{MODEL}/", s3=options(s3_endpoint))
    assert [s for _, s, _ in one_model] == ["6-res-jb", "8-res-jb"]
    itself = discover_sources(
        f"s3://{NEURONPEDIA_BUCKET}/v1/{MODEL}/{SOURCE}", s3=options(s3_endpoint)
    )
    assert [(m, s) for m, s, _ in itself] == [(MODEL, SOURCE)]


def test_private_bucket_needs_credentials(
    bucket: Path, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = admin_client(s3_endpoint)
    create_bucket(client, "private-exports", public=False)
    put_objects(
        client,
        "private-exports",
        [(k.replace("v1/", "team/", 1), d) for k, d in neuronpedia_objects(bucket)],
    )
    where = f"s3://private-exports/team/{MODEL}/{SOURCE}"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    unsigned = open_location(where, s3=options(s3_endpoint))  # no credentials: unsigned
    with pytest.raises(LocationError, match="private bucket needs credentials"):
        unsigned.read_bytes("source.jsonl")

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    signed = open_location(where, s3=options(s3_endpoint, addressing_style="path"))
    assert b'"6-res-jb"' in signed.read_bytes("source.jsonl")


def test_download_refuses_a_file_changed_since_listing(
    bucket: Path, s3_endpoint: str, tmp_path: Path
) -> None:
    client = admin_client(s3_endpoint)
    key = f"v1/{MODEL}/8-res-jb/explanations/batch-0.jsonl.gz"
    location = open_location(
        f"s3://{NEURONPEDIA_BUCKET}/v1/{MODEL}/8-res-jb", s3=options(s3_endpoint)
    )
    listed = {f.path: f for f in location.list_files()}["explanations/batch-0.jsonl.gz"]
    original = client.get_object(Bucket=NEURONPEDIA_BUCKET, Key=key)["Body"].read()
    changed = bytearray(original)
    changed[-9] ^= 0xFF  # same size, other bytes: only the ETag tells
    client.put_object(Bucket=NEURONPEDIA_BUCKET, Key=key, Body=bytes(changed))
    try:
        with pytest.raises(LocationError, match="changed since it was listed"):
            location.download(listed.path, tmp_path / "e.gz", expected=listed)
        assert not (tmp_path / "e.gz").exists()
    finally:
        client.put_object(Bucket=NEURONPEDIA_BUCKET, Key=key, Body=original)


@pytest.mark.parametrize(
    ("url", "bucket_name", "prefix", "endpoint"),
    [
        (
            "https://neuronpedia-datasets.s3.amazonaws.com/v1/gpt2-small/6-res-jb/",
            "neuronpedia-datasets",
            "v1/gpt2-small/6-res-jb/",
            "https://s3.us-east-1.amazonaws.com",
        ),
        (
            "https://my.bucket.s3.eu-west-2.amazonaws.com/exports/x/y",
            "my.bucket",
            "exports/x/y/",
            "https://s3.eu-west-2.amazonaws.com",
        ),
        (
            "https://s3.amazonaws.com/neuronpedia-datasets/v1/gpt2-small/6-res-jb",
            "neuronpedia-datasets",
            "v1/gpt2-small/6-res-jb/",
            "https://s3.amazonaws.com",
        ),
    ],
)
def test_bucket_urls_name_bucket_prefix_and_endpoint(
    url: str, bucket_name: str, prefix: str, endpoint: str
) -> None:
    location = S3Location.from_url(url, S3Options(anonymous=True))
    assert (location.bucket, location.prefix) == (bucket_name, prefix)
    assert location.client.meta.endpoint_url == endpoint
