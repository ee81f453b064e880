"""Round trips through the writer and reader, malformed input, local and web locations.

Locations in S3 buckets are tested against a real S3 server in `test_s3_locations.py`.
"""

import gzip
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from formats_factories import MODEL, SOURCE, write_export

from interpedia_formats.locations import (
    HttpLocation,
    LocalLocation,
    LocationError,
    discover_sources,
    open_location,
)
from interpedia_formats.neuronpedia_export import (
    MANIFEST_NAME,
    ExportWriter,
    MalformedExportError,
    NpExplanation,
    NpNeuron,
    iter_rows,
    kind_of,
    read_file_rows,
    read_manifest,
)


def test_round_trip_keeps_every_row_and_field(tmp_path: Path) -> None:
    root = write_export(tmp_path)
    files = LocalLocation(root).list_files()
    paths = [f.path for f in files]
    assert paths[:4] == ["release.jsonl", "model.jsonl", "sourceset.jsonl", "source.jsonl"]
    assert "features/batch-0.jsonl.gz" in paths and "features/batch-2.jsonl.gz" in paths
    # numeric, not lexical, batch order
    feature_files = [p for p in paths if kind_of(p) == "features"]
    assert feature_files == [f"features/batch-{n}.jsonl.gz" for n in range(3)]

    features = [row for p in feature_files for _, row in read_file_rows(root, p)]
    assert [f.index_int for f in features] == list(range(2100))
    assert features[5].pos_str == ["a", "b"] and features[5].maxActApprox == 5.0
    acts = [r for _, r in read_file_rows(root, "activations/batch-1.jsonl.gz")]
    assert len(acts) == 2 * 1024
    assert acts[0].tokens[2] == " «é»" and acts[0].index == "1024"
    (model,) = [r for _, r in read_file_rows(root, "model.jsonl")]
    assert model.displayName == "GPT-2 Small"


def test_manifest_matches_files(tmp_path: Path) -> None:
    root = write_export(tmp_path, n_features=10)
    manifest = read_manifest((root / MANIFEST_NAME).read_bytes())
    for entry in manifest.files:
        data = (root / entry.path).read_bytes()
        assert entry.size == len(data)
        assert entry.sha256 == hashlib.sha256(data).hexdigest()
    assert manifest.by_path()["activations/batch-0.jsonl.gz"].rows == 20


def test_unknown_fields_survive(tmp_path: Path) -> None:
    path = tmp_path / "features" / "batch-0.jsonl.gz"
    path.parent.mkdir()
    row = {"modelId": "m", "layer": "0-x", "index": "3", "umap_x": 1.5, "brandNew": [1]}
    path.write_bytes(gzip.compress(json.dumps(row).encode() + b"\n"))
    ((_, parsed),) = list(read_file_rows(tmp_path, "features/batch-0.jsonl.gz"))
    assert parsed.model_dump()["brandNew"] == [1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"modelId": "m", "layer": "s", "index": "1"}\n{not json\n', "line 2: not valid JSON"),
        (b'{"modelId": "m", "layer": "s"}\n', r"line 1: invalid features row \(index"),
        (b'{"modelId": "m", "layer": "s", "index": "-4"}\n', "line 1: invalid features row"),
        (b"[1, 2]\n", "line 1: expected a JSON object"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "features" / "batch-0.jsonl.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(content))
    with pytest.raises(MalformedExportError, match=message) as info:
        list(read_file_rows(tmp_path, "features/batch-0.jsonl.gz"))
    assert "features/batch-0.jsonl.gz" in str(info.value)


def test_truncated_gzip_is_a_clear_error(tmp_path: Path) -> None:
    data = gzip.compress(b'{"modelId": "m", "layer": "s", "index": "1"}\n' * 1000)
    path = tmp_path / "features" / "batch-0.jsonl.gz"
    path.parent.mkdir()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MalformedExportError, match="cannot decompress"):
        list(read_file_rows(tmp_path, "features/batch-0.jsonl.gz"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"features/batch-0\.jsonl\.gz: empty file \(0 bytes\)"),
        (b'{"modelId": "m"}\n', r"features/batch-0\.jsonl\.gz: not a gzip file"),
    ],
)
def test_empty_or_plain_batch_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "features" / "batch-0.jsonl.gz"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(MalformedExportError, match=message):
        list(read_file_rows(tmp_path, "features/batch-0.jsonl.gz"))


def test_empty_gzip_member_is_zero_rows(tmp_path: Path) -> None:
    path = tmp_path / "activations" / "batch-0.jsonl.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(b""))  # written on purpose: a batch of features that never fired
    assert list(read_file_rows(tmp_path, "activations/batch-0.jsonl.gz")) == []


def test_embedding_as_pgvector_text_or_list() -> None:
    row = {"modelId": "m", "layer": "0-s", "index": "3", "description": "cats"}
    as_text = NpExplanation.model_validate(row | {"embedding": "[0.25,-1,3e-05]"})
    as_list = NpExplanation.model_validate(row | {"embedding": [0.25, -1, 3e-05]})
    assert as_text.embedding == as_list.embedding == [0.25, -1.0, 3e-05]
    assert NpExplanation.model_validate(row | {"embedding": ""}).embedding is None
    with pytest.raises(ValueError, match="pgvector text"):
        NpExplanation.model_validate(row | {"embedding": "(1,2)"})


def test_writer_refuses_rows_of_another_source(tmp_path: Path) -> None:
    with ExportWriter(tmp_path, MODEL, SOURCE) as writer, pytest.raises(ValueError):
        writer.write_feature(NpNeuron(modelId=MODEL, layer="7-res-jb", index=0))


def test_reader_streams_without_reading_whole_file(tmp_path: Path) -> None:
    """The reader yields the first row before it has consumed the stream."""
    root = write_export(tmp_path, n_features=1024, acts=4)

    class Counting:
        def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
            self.inner, self.read_bytes = inner, 0

        def read(self, n: int = -1) -> bytes:
            data = self.inner.read(n)
            self.read_bytes += len(data)
            return data

    path = root / "activations" / "batch-0.jsonl.gz"
    with path.open("rb") as raw:
        stream = Counting(raw)
        rows = iter_rows(stream, "activations/batch-0.jsonl.gz")  # type: ignore[arg-type]
        next(rows)
        assert stream.read_bytes < path.stat().st_size


# --- locations over HTTP --------------------------------------------------------------------


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _static_handler(root: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            target = root / urlsplit(self.path).path.lstrip("/")
            if not target.is_file():
                self.send_response(404)
                self.end_headers()
                return
            data = target.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def static_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = write_export(tmp_path / "site", n_features=1500)
    server = _Server(_static_handler(tmp_path / "site"))
    yield server.url, root
    server.close()


def test_http_location_lists_from_manifest_and_downloads(
    static_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = static_server
    location = open_location(f"{url}/{MODEL}/{SOURCE}/")
    assert isinstance(location, HttpLocation)
    files = location.list_files()
    assert {f.path for f in files} == {
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
    }
    got = location.download("activations/batch-1.jsonl.gz", tmp_path / "dl" / "a.gz")
    data = (root / "activations/batch-1.jsonl.gz").read_bytes()
    assert got.size == len(data) and got.sha256 == hashlib.sha256(data).hexdigest()
    with location.open("features/batch-0.jsonl.gz") as stream:
        assert sum(1 for _ in iter_rows(stream, "features/batch-0.jsonl.gz")) == 1024


def test_http_folder_without_manifest_or_bucket_says_both(
    static_server: tuple[str, Path],
) -> None:
    url, _ = static_server
    with pytest.raises(LocationError, match=r"no manifest\.json, so it was read as an S3 bucket"):
        open_location(f"{url}/nothing-here/").list_files()


def test_discover_sources_in_a_folder(tmp_path: Path) -> None:
    write_export(tmp_path, n_features=3)
    found = discover_sources(str(tmp_path))
    assert found == [(MODEL, SOURCE, f"{tmp_path}/{MODEL}/{SOURCE}")]


def test_local_location_refuses_paths_outside_root(tmp_path: Path) -> None:
    root = write_export(tmp_path, n_features=3)
    with pytest.raises(LocationError), LocalLocation(root).open("../../../etc/passwd"):
        pass


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("features/batch-0.jsonl.gz", "features"),
        ("activations/batch-123.jsonl.gz", "activations"),
        ("source.jsonl", "source"),
        ("manifest.json", "manifest"),
        ("features/batch-x/../../../etc/cron.d/y.jsonl.gz", None),
        ("features/batch-1.jsonl.gz/../x.jsonl.gz", None),
        ("other/batch-1.jsonl.gz", None),
        ("features/batch-.jsonl.gz", None),
        ("sub/source.jsonl", None),
    ],
)
def test_only_exact_export_paths_are_export_files(path: str, kind: str | None) -> None:
    assert kind_of(path) == kind
