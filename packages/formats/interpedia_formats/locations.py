"""Where an export lives: a local folder, an http(s) URL, or an S3-compatible bucket.

A location is the root of one source's export (`.../{modelId}/{sourceId}/`), or, for
`discover_sources`, a folder or prefix holding many. Every location lists its files
and streams them; downloads hash as they write, so a file is read exactly once.

- Local folder: `/data/exports/gpt2-small/6-res-jb` (or `file://...`).
- http(s): `https://host/exports/gpt2-small/6-res-jb/`. Plain web servers have no
  listing, so the files are listed from `manifest.json` (written by `ExportWriter`).
- S3-compatible: `s3://bucket/prefix` against `endpoint` (AWS by default), or
  `s3+http://host:port/bucket/prefix` (path-style, e.g. MinIO). Listed with
  ListObjectsV2, following continuation tokens past 1,000 keys; unsigned requests,
  so public buckets only.
"""

import hashlib
import xml.etree.ElementTree as ET
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote, urlsplit

import httpx

from interpedia_formats.neuronpedia_export import MANIFEST_NAME, kind_of, read_manifest, sort_key

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
DEFAULT_S3_ENDPOINT = "https://s3.amazonaws.com"
CHUNK = 1 << 20


class LocationError(Exception):
    """A location cannot be listed or read; the message says which and why."""


@dataclass(frozen=True)
class ListedFile:
    path: str  # relative to the export's root, with forward slashes
    size: int | None


@dataclass(frozen=True)
class Downloaded:
    size: int
    sha256: str


class ExportLocation(ABC):
    """The root of one export; subclasses know how to list and stream."""

    description: str

    @abstractmethod
    def list_all(self) -> Iterator[ListedFile]:
        """Every file under the root (including ones that are not export files)."""

    @abstractmethod
    @contextmanager
    def open(self, path: str) -> Iterator[IO[bytes]]:
        """A stream of one file's bytes."""

    def list_files(self) -> list[ListedFile]:
        """The export's files, config first, then batches in numeric order."""
        files = [f for f in self.list_all() if kind_of(f.path) is not None]
        return sorted(files, key=lambda f: sort_key(f.path))

    def read_bytes(self, path: str) -> bytes:
        with self.open(path) as stream:
            return stream.read()

    def download(
        self, path: str, dest: Path, *, between_chunks: Callable[[], None] | None = None
    ) -> Downloaded:
        """Copy one file to `dest` atomically (tmp + rename), hashing on the way.

        `between_chunks` is called before each chunk; whatever it raises (a stop request)
        abandons the download with `dest` untouched, so the next run fetches it again.
        """
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        digest = hashlib.sha256()
        size = 0
        with self.open(path) as stream, tmp.open("wb") as out:
            while chunk := stream.read(CHUNK):
                if between_chunks is not None:
                    between_chunks()
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        tmp.replace(dest)
        return Downloaded(size=size, sha256=digest.hexdigest())


class LocalLocation(ExportLocation):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.description = str(self.root)
        if not self.root.is_dir():
            raise LocationError(f"{self.root} is not a folder")

    def list_all(self) -> Iterator[ListedFile]:
        for path in self.root.rglob("*"):
            if path.is_file():
                yield ListedFile(path.relative_to(self.root).as_posix(), path.stat().st_size)

    @contextmanager
    def open(self, path: str) -> Iterator[IO[bytes]]:
        target = (self.root / path).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise LocationError(f"{path} is outside {self.root}")
        try:
            with target.open("rb") as stream:
                yield stream
        except FileNotFoundError:
            raise LocationError(f"{target} does not exist") from None


class _HttpStream(IO[bytes]):
    """A minimal readable stream over an httpx streaming response."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_bytes(CHUNK)
        self._buffer = b""

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        while n < 0 or len(self._buffer) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if n < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def readable(self) -> bool:
        return True


class _HttpBase(ExportLocation):
    def __init__(self, client: httpx.Client | None) -> None:
        self.client = client or httpx.Client(timeout=60.0, follow_redirects=True)

    @abstractmethod
    def url_of(self, path: str) -> str: ...

    @contextmanager
    def open(self, path: str) -> Iterator[IO[bytes]]:
        url = self.url_of(path)
        try:
            with self.client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise LocationError(f"GET {url} answered HTTP {response.status_code}")
                yield _HttpStream(response)
        except httpx.HTTPError as exc:
            raise LocationError(f"GET {url} failed: {exc}") from None


class HttpLocation(_HttpBase):
    """An export served by any web server; listed from its `manifest.json`."""

    def __init__(self, url: str, client: httpx.Client | None = None) -> None:
        super().__init__(client)
        self.base = url.rstrip("/") + "/"
        self.description = self.base

    def url_of(self, path: str) -> str:
        return self.base + quote(path)

    def list_all(self) -> Iterator[ListedFile]:
        try:
            manifest = read_manifest(self.read_bytes(MANIFEST_NAME))
        except LocationError as exc:
            raise LocationError(
                f"{self.base} has no readable {MANIFEST_NAME} ({exc}); an http(s) export is "
                "listed from its manifest, which `interpedia` exports write"
            ) from None
        yield ListedFile(MANIFEST_NAME, None)
        for entry in manifest.files:
            yield ListedFile(entry.path, entry.size)


class S3Location(_HttpBase):
    """A prefix of an S3-compatible bucket, listed page by page with ListObjectsV2."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        prefix: str,
        client: httpx.Client | None = None,
        page_size: int = 1000,
    ) -> None:
        super().__init__(client)
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.page_size = page_size
        self.description = f"s3://{bucket}/{self.prefix} at {self.endpoint}"

    def url_of(self, path: str) -> str:
        return f"{self.endpoint}/{self.bucket}/{quote(self.prefix + path)}"

    def list_keys(self, prefix: str | None = None) -> Iterator[tuple[str, int]]:
        """(key, size) of every object under `prefix`, across as many pages as it takes."""
        token: str | None = None
        pages = 0
        while True:
            params = {
                "list-type": "2",
                "prefix": self.prefix if prefix is None else prefix,
                "max-keys": str(self.page_size),
            }
            if token:
                params["continuation-token"] = token
            url = f"{self.endpoint}/{self.bucket}"
            try:
                response = self.client.get(url, params=params)
            except httpx.HTTPError as exc:
                raise LocationError(f"listing {self.description} failed: {exc}") from None
            if response.status_code != 200:
                raise LocationError(
                    f"listing {self.description} answered HTTP {response.status_code}"
                )
            try:
                root = ET.fromstring(response.content)
            except ET.ParseError as exc:
                raise LocationError(f"listing {self.description}: not XML ({exc})") from None
            for item in root.iter(f"{S3_NS}Contents"):
                key = item.findtext(f"{S3_NS}Key") or ""
                yield key, int(item.findtext(f"{S3_NS}Size") or 0)
            pages += 1
            truncated = (root.findtext(f"{S3_NS}IsTruncated") or "false").lower() == "true"
            token = root.findtext(f"{S3_NS}NextContinuationToken")
            if not truncated:
                return
            if not token:
                raise LocationError(f"listing {self.description}: truncated page without a token")

    def list_all(self) -> Iterator[ListedFile]:
        for key, size in self.list_keys():
            if key.endswith("/"):
                continue
            yield ListedFile(key[len(self.prefix) :], size)


def open_location(
    location: str, *, s3_endpoint: str = DEFAULT_S3_ENDPOINT, client: httpx.Client | None = None
) -> ExportLocation:
    """The location a string names (see the module docstring for the forms)."""
    parts = urlsplit(location)
    if parts.scheme in ("http", "https"):
        return HttpLocation(location, client)
    if parts.scheme == "s3":
        return S3Location(s3_endpoint, parts.netloc, parts.path, client)
    if parts.scheme in ("s3+http", "s3+https"):
        bucket, _, prefix = parts.path.lstrip("/").partition("/")
        if not bucket:
            raise LocationError(f"{location}: no bucket after the host")
        endpoint = f"{parts.scheme.removeprefix('s3+')}://{parts.netloc}"
        return S3Location(endpoint, bucket, prefix, client)
    if parts.scheme == "file":
        return LocalLocation(Path(parts.path))
    if parts.scheme and len(parts.scheme) > 1:
        raise LocationError(f"{location}: unsupported scheme {parts.scheme}://")
    return LocalLocation(Path(location))


def discover_sources(
    location: str, *, s3_endpoint: str = DEFAULT_S3_ENDPOINT, client: httpx.Client | None = None
) -> list[tuple[str, str, str]]:
    """(model_id, source_id, location) of each export under a folder or bucket prefix.

    An export is recognised by its `source.jsonl`; http(s) locations cannot be
    walked and must name one export directly.
    """
    found: list[tuple[str, str, str]] = []
    root = open_location(location, s3_endpoint=s3_endpoint, client=client)
    if isinstance(root, HttpLocation):
        raise LocationError("an http(s) location cannot be walked; give one export's URL")
    for listed in root.list_all():
        parts = listed.path.split("/")
        if parts[-1] != "source.jsonl":
            continue
        if len(parts) == 1:  # the location is itself one export
            base = location.rstrip("/")
            found.append((Path(base).parent.name, Path(base).name, base))
        elif len(parts) >= 3:
            model_id, source_id = parts[-3], parts[-2]
            found.append((model_id, source_id, location.rstrip("/") + "/" + "/".join(parts[:-1])))
    return sorted(set(found))
