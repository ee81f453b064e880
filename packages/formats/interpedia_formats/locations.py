"""Where an export lives: a local folder, an http(s) URL, or an S3-compatible bucket.

A location is the root of one source's export (`.../{modelId}/{sourceId}/`), or, for
`discover_sources`, a folder or prefix holding many. Every location lists its files
and streams them; downloads hash as they write, so a file is read exactly once.

- Local folder: `/data/exports/gpt2-small/6-res-jb` (or `file://...`).
- s3://: `s3://neuronpedia-datasets/v1/gpt2-small/6-res-jb`, read with boto3, so
  signing, regions, retries and both addressing styles are botocore's. Credentials
  come from the usual AWS chain (`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, ...); without
  any, requests go unsigned, which is how public buckets such as Neuronpedia's are
  read. `S3Options.endpoint_url` points it at any S3-compatible store (MinIO, R2, ...).
- http(s): `https://host/exports/gpt2-small/6-res-jb/`. If the folder has a
  `manifest.json` (Interpedia's exports write one), any web server will do and the
  manifest lists the files. Otherwise the URL is taken to be a bucket's: the files are
  listed with S3 ListObjectsV2 over that URL (virtual-host URLs like
  `https://BUCKET.s3.amazonaws.com/PREFIX` and path-style ones like
  `http://127.0.0.1:9000/BUCKET/PREFIX` both work), which is what Neuronpedia's public
  bucket needs, since its exports carry no manifest.

Listings follow continuation tokens, so a prefix of any number of keys lists whole
(S3 answers at most 1,000 keys a page). Each listed file keeps its size and ETag;
`download` refuses a file whose size or ETag differs from its listing, or, where the
ETag is the content's MD5 (single-part, not KMS-encrypted), whose bytes do not hash to it.
"""

import hashlib
import io
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal
from urllib.parse import quote, urlsplit

import boto3
import httpx
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from interpedia_formats.neuronpedia_export import MANIFEST_NAME, kind_of, read_manifest, sort_key

CHUNK = 1 << 20
DEFAULT_REGION = "us-east-1"
# Top-level folders of a bucket that hold no exports (Neuronpedia keeps `v1/config/`).
NOT_MODELS = frozenset({"config"})
VERSION_FOLDER = re.compile(r"v\d+")  # Neuronpedia's bucket keeps everything under `v1/`
# `BUCKET.s3.amazonaws.com`, `BUCKET.s3.REGION.amazonaws.com`, `BUCKET.s3-REGION.amazonaws.com`
AWS_VIRTUAL_HOST = re.compile(r"(?P<bucket>.+)\.s3(?:[.-](?P<region>[a-z0-9-]+))?\.amazonaws\.com")
SINGLE_PART_ETAG = re.compile(r'"?[0-9a-f]{32}"?')


class LocationError(Exception):
    """A location cannot be listed or read; the message says which and why."""


@dataclass(frozen=True)
class S3Options:
    """How to reach S3: the store, its region, the URL style and whether to sign."""

    endpoint_url: str | None = None  # None: AWS
    region: str | None = None  # None: the AWS configuration's, else us-east-1
    addressing_style: Literal["auto", "virtual", "path"] = "auto"
    anonymous: bool | None = None  # None: sign when credentials are configured
    max_attempts: int = 5


@dataclass(frozen=True)
class ListedFile:
    path: str  # relative to the export's root, with forward slashes
    size: int | None
    etag: str | None = None  # as the store gives it, quotes included


@dataclass(frozen=True)
class Downloaded:
    size: int
    sha256: str
    md5: str


class _ChunkReader(io.RawIOBase):
    """A raw stream over an iterator of byte chunks; wrap it in a BufferedReader."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _reader(chunks: Iterator[bytes]) -> IO[bytes]:
    """A buffered, line-iterable stream over chunks (what gzip and the row reader need)."""
    return io.BufferedReader(_ChunkReader(chunks), CHUNK)


def _receive(
    stream: IO[bytes],
    dest: Path,
    check: Callable[[Downloaded], None],
    between_chunks: Callable[[], None] | None = None,
) -> Downloaded:
    """Copy a stream to `dest` atomically (tmp + rename), hashing on the way.

    `check` sees the sizes and hashes before the rename, so a refused file never
    lands where a later run would take it for a finished download; nor does one
    abandoned by `between_chunks` raising.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with tmp.open("wb") as out:
            while chunk := stream.read(CHUNK):
                if between_chunks is not None:
                    between_chunks()
                sha256.update(chunk)
                md5.update(chunk)
                size += len(chunk)
                out.write(chunk)
        got = Downloaded(size=size, sha256=sha256.hexdigest(), md5=md5.hexdigest())
        check(got)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(dest)
    return got


def _check_size(path: str, got: Downloaded, expected: ListedFile | None) -> None:
    if expected is not None and expected.size is not None and got.size != expected.size:
        raise LocationError(
            f"{path}: downloaded {got.size} bytes, the listing says {expected.size} (the file "
            "changed since it was listed, or the download was cut short); run the import "
            "again to list it afresh"
        )


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

    @abstractmethod
    def find_exports(self) -> list[tuple[str, str, str]]:
        """(model_id, source_id, path under the root; "" for the root) of each export."""

    def list_files(self) -> list[ListedFile]:
        """The export's files, config first, then batches in numeric order."""
        files = [f for f in self.list_all() if kind_of(f.path) is not None]
        return sorted(files, key=lambda f: sort_key(f.path))

    def read_bytes(self, path: str) -> bytes:
        with self.open(path) as stream:
            return stream.read()

    def download(
        self,
        path: str,
        dest: Path,
        expected: ListedFile | None = None,
        *,
        between_chunks: Callable[[], None] | None = None,
    ) -> Downloaded:
        """Copy one file to `dest`; refuse it if it differs from `expected` (its listing).

        `between_chunks` is called before each chunk; whatever it raises (a stop request)
        abandons the download with `dest` untouched, so the next run fetches it again.
        """
        with self.open(path) as stream:
            return _receive(
                stream, dest, lambda got: _check_size(path, got, expected), between_chunks
            )


def _exports_from_listing(
    files: Iterator[ListedFile], root_name: Path
) -> list[tuple[str, str, str]]:
    """Exports found by their `source.jsonl`, anywhere in a full listing."""
    found: list[tuple[str, str, str]] = []
    for listed in files:
        parts = listed.path.split("/")
        if parts[-1] != "source.jsonl":
            continue
        if len(parts) == 1:  # the location is itself one export
            found.append((root_name.parent.name, root_name.name, ""))
        elif len(parts) >= 3:
            found.append((parts[-3], parts[-2], "/".join(parts[:-1])))
    return found


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

    def find_exports(self) -> list[tuple[str, str, str]]:
        return _exports_from_listing(self.list_all(), self.root.resolve())


class HttpLocation(ExportLocation):
    """An export served by any web server; listed from its `manifest.json`."""

    def __init__(self, url: str, client: httpx.Client | None = None) -> None:
        self.client = client or httpx.Client(timeout=60.0, follow_redirects=True)
        self.base = url.rstrip("/") + "/"
        self.description = self.base

    def url_of(self, path: str) -> str:
        return self.base + quote(path)

    @contextmanager
    def open(self, path: str) -> Iterator[IO[bytes]]:
        url = self.url_of(path)
        try:
            with self.client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise LocationError(f"GET {url} answered HTTP {response.status_code}")
                yield _reader(response.iter_bytes(CHUNK))
        except httpx.HTTPError as exc:
            raise LocationError(f"GET {url} failed: {exc}") from None

    def list_all(self) -> Iterator[ListedFile]:
        manifest = read_manifest(self.read_bytes(MANIFEST_NAME))
        yield ListedFile(MANIFEST_NAME, None)
        for entry in manifest.files:
            yield ListedFile(entry.path, entry.size)

    def find_exports(self) -> list[tuple[str, str, str]]:
        manifest = read_manifest(self.read_bytes(MANIFEST_NAME))
        return [(manifest.model_id, manifest.source_id, "")]


def _s3_client(options: S3Options, endpoint_url: str | None, region: str | None) -> Any:
    session = boto3.session.Session()
    anonymous = options.anonymous
    if anonymous is None:
        anonymous = session.get_credentials() is None
    config = Config(
        retries={"max_attempts": options.max_attempts, "mode": "standard"},
        s3={"addressing_style": options.addressing_style},
        connect_timeout=10,
        read_timeout=60,
        **({"signature_version": UNSIGNED} if anonymous else {}),
    )
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region or session.region_name or DEFAULT_REGION,
        config=config,
    )


def _etag_is_md5(etag: str | None, response: dict[str, Any]) -> bool:
    """Whether an object's ETag is the MD5 of its bytes (single-part, not KMS or SSE-C)."""
    if etag is None or not SINGLE_PART_ETAG.fullmatch(etag):
        return False
    encryption = str(response.get("ServerSideEncryption") or "")
    return not encryption.startswith("aws:kms") and not response.get("SSECustomerAlgorithm")


class S3Location(ExportLocation):
    """A prefix of an S3-compatible bucket, listed page by page with ListObjectsV2."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        options: S3Options | None = None,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> None:
        self.options = options or S3Options()
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        endpoint = endpoint_url or self.options.endpoint_url
        self.client = _s3_client(self.options, endpoint, region or self.options.region)
        self.description = f"s3://{bucket}/{self.prefix}" + (f" at {endpoint}" if endpoint else "")
        self.hint = ""  # what to add to an error (set when an http(s) URL was read as a bucket)

    @classmethod
    def from_url(cls, url: str, options: S3Options | None = None) -> "S3Location":
        """A bucket's http(s) URL: AWS virtual-host style, or path style (`/BUCKET/PREFIX`)."""
        options = options or S3Options()
        parts = urlsplit(url)
        aws = AWS_VIRTUAL_HOST.fullmatch(parts.hostname or "")
        if aws:
            region = aws.group("region") or DEFAULT_REGION
            endpoint = f"{parts.scheme}://s3.{region}.amazonaws.com"
            bucket = aws.group("bucket")
            return cls(bucket, parts.path, options, endpoint_url=endpoint, region=region)
        bucket, _, prefix = parts.path.lstrip("/").partition("/")
        if not bucket:
            raise LocationError(f"{url}: no bucket in the path")
        return cls(bucket, prefix, options, endpoint_url=f"{parts.scheme}://{parts.netloc}")

    def _fail(self, what: str, exc: Exception) -> LocationError:
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "?"), error.get("Message", "")
            hint = ""
            if code in ("403", "AccessDenied", "Forbidden"):
                hint = (
                    "; a private bucket needs credentials (AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
                )
            elif code in ("404", "NoSuchKey"):
                hint = ": no such file"
            elif code == "NoSuchBucket":
                hint = ": no such bucket"
            return LocationError(f"{what} in {self.description}: {code} {message}{hint}{self.hint}")
        return LocationError(f"{what} in {self.description} failed: {exc}{self.hint}")

    def _pages(self, prefix: str, delimiter: str | None = None) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        kwargs = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        try:
            yield from paginator.paginate(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("listing", exc) from None

    def list_all(self) -> Iterator[ListedFile]:
        for page in self._pages(self.prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                if not key.endswith("/"):
                    yield ListedFile(key[len(self.prefix) :], item.get("Size"), item.get("ETag"))

    def _level(self, path: str) -> tuple[set[str], list[str]]:
        """(file names, sub-folder names) directly under `path`, listed with a delimiter."""
        prefix = self.prefix + (path + "/" if path else "")
        names: set[str] = set()
        folders: list[str] = []
        for page in self._pages(prefix, "/"):
            names |= {item["Key"][len(prefix) :] for item in page.get("Contents", [])}
            folders += [
                p["Prefix"][len(prefix) :].strip("/") for p in page.get("CommonPrefixes", [])
            ]
        return names, folders

    def find_exports(self) -> list[tuple[str, str, str]]:
        """The root, its sub-folders, or their sub-folders: `{model}/{source}/` at most.

        Walked folder by folder, as Neuronpedia's own admin page lists its bucket: a full
        listing of a bucket like `neuronpedia-datasets` would be millions of keys. From a
        bucket's top, a version folder (Neuronpedia's `v1/`) is stepped into.
        """
        return self._find("")

    def _find(self, path: str) -> list[tuple[str, str, str]]:
        names, models = self._level(path)
        here = Path(self.prefix.rstrip("/"), path)
        if "source.jsonl" in names:
            return [(here.parent.name, here.name, path)]
        if not path and not self.prefix and models and all(map(VERSION_FOLDER.fullmatch, models)):
            return [found for version in models for found in self._find(version)]
        found: list[tuple[str, str, str]] = []
        for model in models:
            if model in NOT_MODELS:
                continue
            below = f"{path}/{model}" if path else model
            names, sources = self._level(below)
            if "source.jsonl" in names:
                found.append((here.name, model, below))
            else:
                found += [(model, source, f"{below}/{source}") for source in sources]
        return found

    def _get(self, path: str) -> dict[str, Any]:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + path)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(f"reading {path}", exc) from None

    @contextmanager
    def open(self, path: str) -> Iterator[IO[bytes]]:
        body = self._get(path)["Body"]
        try:
            yield _reader(body.iter_chunks(CHUNK))
        except BotoCoreError as exc:
            raise self._fail(f"reading {path}", exc) from None
        finally:
            body.close()

    def download(
        self,
        path: str,
        dest: Path,
        expected: ListedFile | None = None,
        *,
        between_chunks: Callable[[], None] | None = None,
    ) -> Downloaded:
        response = self._get(path)
        etag = response.get("ETag")

        def check(got: Downloaded) -> None:
            _check_size(path, got, expected)
            if expected is not None and expected.etag and etag and etag != expected.etag:
                raise LocationError(
                    f"{path}: its ETag is {etag}, the listing says {expected.etag} (the file "
                    "changed since it was listed); run the import again to list it afresh"
                )
            if _etag_is_md5(etag, response) and got.md5 != str(etag).strip('"'):
                raise LocationError(
                    f"{path}: the downloaded bytes have MD5 {got.md5}, the store's ETag is "
                    f"{etag}: the download is corrupt"
                )

        body = response["Body"]
        try:
            return _receive(_reader(body.iter_chunks(CHUNK)), dest, check, between_chunks)
        except BotoCoreError as exc:
            raise self._fail(f"reading {path}", exc) from None
        finally:
            body.close()


def _open_http(url: str, options: S3Options, client: httpx.Client | None) -> ExportLocation:
    """A web folder with a manifest, or else a bucket's URL listed the S3 way."""
    plain = HttpLocation(url, client)
    try:
        with plain.client.stream("GET", plain.url_of(MANIFEST_NAME)) as response:
            has_manifest = response.status_code == 200
    except httpx.HTTPError as exc:
        raise LocationError(f"{url}: cannot connect ({exc})") from None
    if has_manifest:
        return plain
    bucket = S3Location.from_url(url, options)
    bucket.hint = f" ({url} has no {MANIFEST_NAME}, so it was read as an S3 bucket's URL)"
    return bucket


def open_location(
    location: str, *, s3: S3Options | None = None, client: httpx.Client | None = None
) -> ExportLocation:
    """The location a string names (see the module docstring for the forms)."""
    options = s3 or S3Options()
    parts = urlsplit(location)
    if parts.scheme in ("http", "https"):
        return _open_http(location, options, client)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise LocationError(f"{location}: no bucket after s3://")
        return S3Location(parts.netloc, parts.path, options)
    if parts.scheme == "file":
        return LocalLocation(Path(parts.path))
    if parts.scheme and len(parts.scheme) > 1:
        raise LocationError(f"{location}: unsupported scheme {parts.scheme}://")
    return LocalLocation(Path(location))


def discover_sources(
    location: str, *, s3: S3Options | None = None, client: httpx.Client | None = None
) -> list[tuple[str, str, str]]:
    """(model_id, source_id, location) of each export under a folder or bucket prefix."""
    root = open_location(location, s3=s3, client=client)
    base = location.rstrip("/")
    return sorted(
        {
            (model_id, source_id, f"{base}/{path}" if path else base)
            for model_id, source_id, path in root.find_exports()
        }
    )
