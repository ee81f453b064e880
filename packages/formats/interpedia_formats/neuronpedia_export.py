"""Neuronpedia's bulk export format: row models, a streaming writer and a streaming reader.

One export holds one source of one model, laid out as Neuronpedia lays it out:

    {modelId}/{sourceId}/
        release.jsonl  model.jsonl  sourceset.jsonl  source.jsonl
        features/batch-N.jsonl.gz  activations/batch-N.jsonl.gz  explanations/batch-N.jsonl.gz
        manifest.json            (ours; see below)

Each line is one database row with Neuronpedia's column names; batch N holds the
rows of feature indices [N*1024, (N+1)*1024). Rows keep unknown fields
(`extra="allow"`), so a newer export still round-trips.

`manifest.json` is an Interpedia addition that Neuronpedia ignores: every file's
relative path, size, SHA-256 and row count. An http(s) location has no directory
listing, so the reader lists it from the manifest; an import verifies against it.

The reader decompresses one line at a time, so memory stays bounded by the
longest line, whatever the file's size; a line that is not valid JSON, or not a
valid row, raises `MalformedExportError` naming the file and line.
"""

import gzip
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

BATCH_SIZE = 1024
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "neuronpedia-export"
CONFIG_FILES = ("release.jsonl", "model.jsonl", "sourceset.jsonl", "source.jsonl")
BATCH_KINDS = ("features", "activations", "explanations")
BATCH_PATH = re.compile(r"([a-z]+)/batch-(\d{1,9})\.jsonl\.gz")
FileKind = Literal[
    "release", "model", "sourceset", "source", "features", "activations", "explanations", "manifest"
]


class MalformedExportError(ValueError):
    """A file of an export could not be read; the message names the file and line."""


class NpRow(BaseModel):
    """A row of Neuronpedia's database; unknown columns are kept as they are."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class NpModel(NpRow):
    id: str
    displayName: str = ""
    displayNameShort: str | None = None
    tlensId: str | None = None
    dimension: int | None = None
    layers: int = 0
    neuronsPerLayer: int | None = None
    owner: str | None = None
    instruct: bool = False
    inferenceEnabled: bool = True
    defaultSourceSetName: str | None = None
    defaultSourceId: str | None = None
    visibility: str | None = None
    creatorId: str | None = None


class NpSourceRelease(NpRow):
    name: str
    description: str = ""
    descriptionShort: str | None = None
    urls: list[str] = Field(default_factory=list)
    creatorName: str = ""
    featured: bool = False
    defaultSourceSetName: str | None = None
    defaultSourceId: str | None = None


class NpSourceSet(NpRow):
    modelId: str
    name: str
    description: str = ""
    type: str = "sae"
    creatorName: str = ""
    urls: list[str] = Field(default_factory=list)
    releaseName: str | None = None
    hasDashboards: bool = True
    allowInferenceSearch: bool = True
    defaultRange: int | None = None
    showDfa: bool = False
    showCorrelated: bool = False
    showUmap: bool = False


class NpSource(NpRow):
    modelId: str
    id: str
    setName: str
    hasDashboards: bool = True
    inferenceEnabled: bool = True
    saelensConfig: dict[str, Any] | None = None
    saelensRelease: str | None = None
    saelensSaeId: str | None = None
    hfRepoId: str | None = None
    hfFolderId: str | None = None
    num_prompts: int | None = None
    num_tokens_in_prompt: int | None = None
    dataset: str | None = None
    notes: str | None = None


def _index_as_str(value: Any) -> str:
    """Neuronpedia stores `index` as a string; accept an int and normalise."""
    if isinstance(value, bool):
        raise ValueError("index must be a number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.isdigit():
        return value
    raise ValueError(f"index must be a non-negative integer, got {value!r}")


class _FeatureKeyed(NpRow):
    modelId: str
    layer: str  # the source id, e.g. "6-res-jb"
    index: str

    _normalise_index = field_validator("index", mode="before")(_index_as_str)

    @property
    def index_int(self) -> int:
        return int(self.index)


class NpNeuron(_FeatureKeyed):
    """A feature's dashboard (Neuronpedia's `Neuron` table)."""

    sourceSetName: str | None = None
    maxActApprox: float | None = None
    hasVector: bool = False
    vector: list[float] = Field(default_factory=list)
    vectorLabel: str | None = None
    vectorDefaultSteerStrength: float | None = 10
    hookName: str | None = None
    topkCosSimIndices: list[int] = Field(default_factory=list)
    topkCosSimValues: list[float] = Field(default_factory=list)
    pos_str: list[str] = Field(default_factory=list)
    pos_values: list[float] = Field(default_factory=list)
    neg_str: list[str] = Field(default_factory=list)
    neg_values: list[float] = Field(default_factory=list)
    frac_nonzero: float | None = None
    freq_hist_data_bar_heights: list[float] = Field(default_factory=list)
    freq_hist_data_bar_values: list[float] = Field(default_factory=list)
    logits_hist_data_bar_heights: list[float] = Field(default_factory=list)
    logits_hist_data_bar_values: list[float] = Field(default_factory=list)
    decoder_weights_dist: list[float] = Field(default_factory=list)


class NpActivation(_FeatureKeyed):
    """One top (or bin) example of a feature."""

    id: str | None = None
    tokens: list[str]
    values: list[float]
    maxValue: float
    maxValueTokenIndex: int
    minValue: float | None = None
    dataIndex: int | None = None
    dataSource: str | None = None
    dfaValues: list[float] = Field(default_factory=list)
    dfaTargetIndex: int | None = None
    dfaMaxValue: float | None = None
    lossValues: list[float] = Field(default_factory=list)
    binMin: float | None = None
    binMax: float | None = None
    binContains: float | None = None
    qualifyingTokenIndex: int | None = None
    creatorId: str | None = None


def _vector_from_text(value: Any) -> Any:
    """Accept pgvector's text form (`"[0.1,0.2]"`) as well as a JSON list.

    Neuronpedia's exporter dumps rows with `json.dumps` of what psycopg2 returns, and
    psycopg2 returns a pgvector column as that text; its importer casts it back with
    `jsonb_to_recordset`. Both forms mean the same vector.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(
            f"embedding must be a list of numbers or pgvector text like '[0.1,0.2]', "
            f"not {text[:40]!r}"
        ) from None


class NpExplanation(_FeatureKeyed):
    id: str | None = None
    description: str
    embedding: list[float] | None = None  # 256 dims of OpenAI text-embedding-3-large
    typeName: str | None = None
    explanationModelName: str | None = None
    authorId: str | None = None
    scoreV1: float | None = None
    scoreV2: float | None = None

    _vector_text = field_validator("embedding", mode="before")(_vector_from_text)


ROW_MODELS: dict[str, type[NpRow]] = {
    "release": NpSourceRelease,
    "model": NpModel,
    "sourceset": NpSourceSet,
    "source": NpSource,
    "features": NpNeuron,
    "activations": NpActivation,
    "explanations": NpExplanation,
}


def kind_of(path: str) -> FileKind | None:
    """The kind of a file from its path relative to the export's root; None if not ours."""
    if path == MANIFEST_NAME:
        return "manifest"
    if path in CONFIG_FILES:
        return path.removesuffix(".jsonl")  # type: ignore[return-value]
    # Exactly `<kind>/batch-<N>.jsonl.gz`: a listed path is also where a download is
    # written, so nothing else (no `..`, no sub-folders) may pass.
    match = BATCH_PATH.fullmatch(path)
    if match and match.group(1) in BATCH_KINDS:
        return match.group(1)  # type: ignore[return-value]
    return None


def batch_number(path: str) -> int:
    """N of `.../batch-N.jsonl.gz` (orders files numerically, not as strings)."""
    name = path.rsplit("/", 1)[-1]
    try:
        return int(name.removeprefix("batch-").removesuffix(".jsonl.gz"))
    except ValueError:
        return -1


def sort_key(path: str) -> tuple[int, int, str]:
    """Config first, then features, activations, explanations (rows refer to features)."""
    order = {
        "release": 0,
        "model": 1,
        "sourceset": 2,
        "source": 3,
        "features": 4,
        "activations": 5,
        "explanations": 6,
        "manifest": 7,
    }
    kind = kind_of(path)
    return (order.get(kind or "", 8), batch_number(path), path)


# --- manifest -----------------------------------------------------------------------------


class ManifestFile(BaseModel):
    path: str
    size: int
    sha256: str
    rows: int


class Manifest(BaseModel):
    format: str = MANIFEST_FORMAT
    version: int = 1
    model_id: str
    source_id: str
    files: list[ManifestFile]

    def by_path(self) -> dict[str, ManifestFile]:
        return {f.path: f for f in self.files}


# --- reading ------------------------------------------------------------------------------


GZIP_MAGIC = b"\x1f\x8b"


class _Prefixed(io.RawIOBase):
    """A stream with bytes already read from it put back in front."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _gunzip(stream: IO[bytes], name: str) -> IO[bytes]:
    """A decompressing stream; refuses an empty or non-gzip file outright.

    Python's gzip reads an empty file as zero rows without complaint, and a batch
    file of zero bytes is a failed upload or copy, never an export's intent: an
    import that took it for "no rows" would end complete with the rows missing.
    """
    head = stream.read(2)
    if not head:
        raise MalformedExportError(f"{name}: empty file (0 bytes), not gzip-compressed rows")
    if head != GZIP_MAGIC[: len(head)] or len(head) < 2:
        raise MalformedExportError(
            f"{name}: not a gzip file (it starts with {head!r}, gzip with {GZIP_MAGIC!r})"
        )
    return gzip.GzipFile(fileobj=io.BufferedReader(_Prefixed(head, stream)), mode="rb")


def iter_lines(
    stream: IO[bytes], name: str, *, gzipped: bool
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, JSON object) of each non-blank line; decompresses as it goes."""
    raw: IO[bytes] = _gunzip(stream, name) if gzipped else stream
    lineno = 0
    try:
        for lineno, line in enumerate(raw, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise MalformedExportError(
                    f"{name} line {lineno}: not valid JSON ({exc})"
                ) from None
            if not isinstance(value, dict):
                raise MalformedExportError(f"{name} line {lineno}: expected a JSON object")
            yield lineno, value
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise MalformedExportError(
            f"{name} after line {lineno}: cannot decompress ({exc})"
        ) from None


def iter_rows(
    stream: IO[bytes], path: str, *, kind: str | None = None
) -> Iterator[tuple[int, NpRow]]:
    """(line number, validated row) of one export file, streamed."""
    kind = kind or kind_of(path)
    if kind not in ROW_MODELS:
        raise MalformedExportError(f"{path}: not a row file of a Neuronpedia export")
    model = ROW_MODELS[kind]
    for lineno, value in iter_lines(stream, path, gzipped=path.endswith(".gz")):
        try:
            yield lineno, model.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise MalformedExportError(
                f"{path} line {lineno}: invalid {kind} row ({where}: {first.get('msg')})"
            ) from None


def read_file_rows(root: Path, path: str) -> Iterator[tuple[int, NpRow]]:
    """Rows of one file of a local export folder."""
    with (root / path).open("rb") as stream:
        yield from iter_rows(stream, path)


def read_manifest(data: bytes) -> Manifest:
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as exc:
        raise MalformedExportError(
            f"{MANIFEST_NAME}: invalid manifest ({exc.errors()[0]})"
        ) from None


# --- writing ------------------------------------------------------------------------------


class _HashingWriter(io.RawIOBase):
    """Counts and hashes the bytes that reach the file, so the manifest needs no re-read."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.size = 0
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.target.write(data)
        self.size += len(data)
        self.digest.update(data)
        return len(data)


class _OpenFile:
    def __init__(self, path: Path, relative: str, gzipped: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.relative = relative
        self.handle = path.open("wb")
        self.hashing = _HashingWriter(self.handle)
        # mtime=0 makes the bytes (and so the checksum) depend only on the rows.
        self.stream: IO[bytes] = (
            gzip.GzipFile(fileobj=self.hashing, mode="wb", mtime=0, compresslevel=6)  # type: ignore[arg-type]
            if gzipped
            else self.hashing  # type: ignore[assignment]
        )
        self.rows = 0

    def write_row(self, row: NpRow) -> None:
        self.stream.write(row.model_dump_json(exclude_none=False).encode() + b"\n")
        self.rows += 1

    def close(self) -> ManifestFile:
        if self.stream is not self.hashing:
            self.stream.close()
        self.handle.close()
        return ManifestFile(
            path=self.relative,
            size=self.hashing.size,
            sha256=self.hashing.digest.hexdigest(),
            rows=self.rows,
        )


class ExportWriter:
    """Writes one source's export, batch file by batch file, in bounded memory.

    Rows may come in any order; a batch file stays open until `close()`, so a
    source of 24,576 features holds 24 open files per kind. Use as a context
    manager; `close()` writes `manifest.json`.
    """

    max_open_per_kind: ClassVar[int] = 64

    def __init__(self, root: Path, model_id: str, source_id: str) -> None:
        self.model_id = model_id
        self.source_id = source_id
        self.root = Path(root) / model_id / source_id
        self.root.mkdir(parents=True, exist_ok=True)
        self._open: dict[str, _OpenFile] = {}
        self._done: dict[str, ManifestFile] = {}

    def __enter__(self) -> "ExportWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _file(self, relative: str) -> _OpenFile:
        handle = self._open.get(relative)
        if handle is None:
            if relative in self._done:
                raise ValueError(f"{relative} was already closed; write a batch's rows together")
            handle = _OpenFile(self.root / relative, relative, relative.endswith(".gz"))
            self._open[relative] = handle
        return handle

    def _config(self, name: str, rows: Iterable[NpRow]) -> None:
        handle = self._file(name)
        for row in rows:
            handle.write_row(row)
        self._done[name] = handle.close()
        del self._open[name]

    def write_model(self, model: NpModel) -> None:
        self._config("model.jsonl", [model])

    def write_release(self, release: NpSourceRelease) -> None:
        self._config("release.jsonl", [release])

    def write_sourceset(self, sourceset: NpSourceSet) -> None:
        self._config("sourceset.jsonl", [sourceset])

    def write_source(self, source: NpSource) -> None:
        self._config("source.jsonl", [source])

    def _batched(self, kind: str, row: _FeatureKeyed) -> None:
        if row.modelId != self.model_id or row.layer != self.source_id:
            raise ValueError(
                f"row of {row.modelId}/{row.layer} written to the export of "
                f"{self.model_id}/{self.source_id}"
            )
        self._file(f"{kind}/batch-{row.index_int // BATCH_SIZE}.jsonl.gz").write_row(row)

    def write_feature(self, row: NpNeuron) -> None:
        self._batched("features", row)

    def write_activation(self, row: NpActivation) -> None:
        self._batched("activations", row)

    def write_explanation(self, row: NpExplanation) -> None:
        self._batched("explanations", row)

    def finish_batch(self, kind: str, batch: int) -> None:
        """Close one batch file early (optional; bounds open files for huge sources)."""
        relative = f"{kind}/batch-{batch}.jsonl.gz"
        if relative in self._open:
            self._done[relative] = self._open.pop(relative).close()

    def close(self) -> Manifest:
        for relative in list(self._open):
            self._done[relative] = self._open.pop(relative).close()
        manifest = Manifest(
            model_id=self.model_id,
            source_id=self.source_id,
            files=[self._done[p] for p in sorted(self._done, key=sort_key)],
        )
        tmp = self.root / (MANIFEST_NAME + ".tmp")
        tmp.write_text(manifest.model_dump_json(indent=1))
        tmp.replace(self.root / MANIFEST_NAME)
        return manifest
