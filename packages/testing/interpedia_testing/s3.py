"""A real S3-compatible server for tests (moto in server mode), and Neuronpedia's bucket layout.

The server runs in its own process on 127.0.0.1, so the code under test talks to it
over HTTP exactly as it would to S3 or MinIO: signing, listing pages of at most 1,000
keys, ETags, and access refused to unsigned requests on private buckets.

`upload_neuronpedia_source` lays an export out the way Neuronpedia's public bucket
`neuronpedia-datasets` does (read from its exporter, `utils/neuronpedia-utils/
neuronpedia_utils/export-data.py`): `v1/{modelId}/{sourceId}/` holding plain
`release.jsonl`, `model.jsonl`, `sourceset.jsonl`, `source.jsonl`,
`inference_hosts.jsonl` and `inference_hosts_on_source.jsonl`, the gzipped
`features/`, `activations/` and `explanations/batch-N.jsonl.gz`, no manifest, and
the bucket-wide `v1/config/*.jsonl`.
"""

import json
import subprocess
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from interpedia_testing.net import free_port, wait_for_http

NEURONPEDIA_BUCKET = "neuronpedia-datasets"
NEURONPEDIA_CONFIG_FILES = (
    "explanation_type.jsonl",
    "explanation_model_type.jsonl",
    "explanation_score_model.jsonl",
    "explanation_score_type.jsonl",
    "eval_type.jsonl",
)
# Test credentials: moto accepts any; they make the admin client sign its requests.
ADMIN_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server in a subprocess; yields its endpoint URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/moto-api/data.json", timeout=60)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def admin_client(endpoint_url: str) -> Any:
    """A signed client, for setting buckets up."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        config=Config(max_pool_connections=16),
        **ADMIN_CREDENTIALS,
    )


def create_bucket(client: Any, bucket: str, *, public: bool) -> None:
    """A bucket (again: no error); a public one lets anyone list and read it, as Neuronpedia's."""
    with suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)
    if public:
        statement = {
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        }
        policy = {"Version": "2012-10-17", "Statement": [statement]}
        client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def put_objects(client: Any, bucket: str, objects: Iterable[tuple[str, bytes]]) -> None:
    """Upload (key, bytes) pairs, several at a time."""
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), objects))


def _jsonl(rows: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def neuronpedia_objects(export_root: Path, prefix: str = "v1") -> list[tuple[str, bytes]]:
    """The keys and bytes of one export in Neuronpedia's layout (no manifest)."""
    model_id, source_id = export_root.parent.name, export_root.name
    base = f"{prefix}/{model_id}/{source_id}"
    objects = [
        (f"{base}/{path.relative_to(export_root).as_posix()}", path.read_bytes())
        for path in sorted(export_root.rglob("*"))
        if path.is_file() and path.name != "manifest.json"
    ]
    host = {"id": f"{model_id}-host", "hostUrl": "", "modelId": model_id}
    objects.append((f"{base}/inference_hosts.jsonl", _jsonl([host])))
    on_source = {"sourceId": source_id, "sourceModelId": model_id, "inferenceHostId": host["id"]}
    objects.append((f"{base}/inference_hosts_on_source.jsonl", _jsonl([on_source])))
    return objects


def neuronpedia_config_objects(prefix: str = "v1") -> list[tuple[str, bytes]]:
    """The bucket-wide `config/` files Neuronpedia's import reads first."""
    return [
        (f"{prefix}/config/{name}", _jsonl([{"name": name.removesuffix(".jsonl")}]))
        for name in NEURONPEDIA_CONFIG_FILES
    ]
