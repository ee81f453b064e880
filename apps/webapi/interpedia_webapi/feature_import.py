"""The admin import of Neuronpedia-format exports: resumable, verified, streamed, bulk-copied.

Why it is shaped this way (Neuronpedia's own import cannot resume, holds whole
files in memory and stops listing at 1,000 files):

- Every file of an export gets a row in `import_files` and moves
  listed → downloaded (size, sha256) → imported (rows), or → failed (error).
- A file's rows and its move to `imported` commit in ONE transaction: rows are
  COPY'd into a temp table, then `INSERT ... SELECT ... ON CONFLICT DO NOTHING`
  on the row's natural key (features) or `external_id` (activations,
  explanations). A crash or `kill -9` anywhere leaves each file either wholly
  imported and marked, or not at all; a rerun redoes only unmarked files, and
  the conflict clause makes even a redone file insert nothing twice.
- Files are decompressed line by line into COPY (asyncpg streams the records),
  so memory is bounded by one line, whatever the file's size.
- A malformed file fails alone with the file and line in its message; its
  transaction rolls back, so it leaves no partial rows.
- `verify_import` compares file sizes, checksums and row counts with the
  export's manifest, and row counts in the database with the files. Without a
  manifest (Neuronpedia's bucket has none), each download is checked against the
  listing's size and ETag instead.
- One process runs a job at a time: it holds a Postgres advisory lock on the job
  for the whole run (released by the server if the process dies), so a second run
  of the same job, or a retry of its failed files, is told plainly that it is
  running rather than sharing its scratch folder. A job marked running whose lock
  nobody holds is reported `interrupted`.
- Rows whose ids are already taken under another model or source are skipped by
  the conflict clause; they are counted per file, the job ends `partial`, and
  verification lists them.
- A lost database connection is not the file's fault: the run stops with
  `DatabaseUnavailable`, and the file stays as it was, to be retried by the next run.
- A stop request (`interpedia_core.stopping`: Ctrl-C, SIGTERM, a worker shutting
  down) abandons the file in hand (its download or its COPY, whose transaction rolls
  back) and marks the import `stopped`; a rerun resumes with that file.

Imported explanation embeddings are kept under `NEURONPEDIA_EMBEDDING_MODEL`.
"""

import asyncio
import hashlib
import logging
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import case, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from interpedia_core import stopping
from interpedia_core.errors import Conflict, InterpediaError, InvalidInput, NotFound
from interpedia_db.bulk import ACTIVATION_COLUMNS, ActivationRow, copy_activations, copy_rows
from interpedia_db.connect import lost_connection
from interpedia_db.embeddings import NEURONPEDIA_EMBEDDING_MODEL
from interpedia_db.models import (
    Activation,
    Explanation,
    ExplanationEmbedding,
    Feature,
    ImportFile,
    ImportJob,
    Model,
    Source,
    SourceRelease,
    SourceSet,
)
from interpedia_formats.locations import ExportLocation, ListedFile, LocationError, open_location
from interpedia_formats.neuronpedia_export import (
    BATCH_KINDS,
    MANIFEST_NAME,
    MalformedExportError,
    Manifest,
    NpActivation,
    NpExplanation,
    NpModel,
    NpNeuron,
    NpSource,
    NpSourceRelease,
    NpSourceSet,
    iter_rows,
    kind_of,
    read_manifest,
    sort_key,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

LocationFactory = Callable[[str], ExportLocation]
ProgressCallback = Callable[["ImportProgress"], Awaitable[None]]

# Advisory lock classes (the first of the two keys): one job's run, one location's start.
JOB_LOCK = 0x1D0B
LOCATION_LOCK = 0x1D0C
# Without these rows nothing else of an export can be stored (every row refers to them).
REQUIRED_CONFIG = ("model.jsonl", "sourceset.jsonl", "source.jsonl")
FOREIGN_KEY_VIOLATION = "23503"
DATABASE_ERRORS = (DBAPIError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


class DatabaseUnavailable(InterpediaError):
    """The database went away; nothing half-done was kept, and the import can be rerun."""

    status_code = 503


@dataclass
class ImportProgress:
    import_id: int
    files_total: int
    files_done: int
    files_failed: int
    rows: int
    current: str | None
    status: str
    rows_skipped: int = 0


@dataclass
class VerifyReport:
    import_id: int
    ok: bool
    differences: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # kind → {files, database}


# --- starting and listing --------------------------------------------------------------------


def _read_source_row(location: ExportLocation) -> NpSource:
    with location.open("source.jsonl") as stream:
        for _, row in iter_rows(stream, "source.jsonl"):
            assert isinstance(row, NpSource)
            return row
    raise MalformedExportError("source.jsonl: no row")


async def start_import(
    session: AsyncSession,
    location: str,
    *,
    location_factory: LocationFactory = open_location,
) -> ImportJob:
    """List an export and record its files; an unfinished import of the same place is reused.

    Reusing the unfinished job is what makes "import again" a resume. Listing again
    refreshes what is known of the files not yet imported (a file changed since the
    last listing is downloaded afresh).
    """
    try:
        opened = await asyncio.to_thread(location_factory, location)
        files = await asyncio.to_thread(opened.list_files)
        if not files:
            raise InvalidInput(f"{location} holds no export files")
        listed = {f.path for f in files}
        missing = [name for name in REQUIRED_CONFIG if name not in listed]
        if missing:
            raise InvalidInput(
                f"the export at {location} has no {' or '.join(missing)}: an export needs "
                f"{', '.join(REQUIRED_CONFIG)}, the rows every feature refers to"
            )
        source = await asyncio.to_thread(_read_source_row, opened)
    except (LocationError, MalformedExportError) as exc:
        raise InvalidInput(f"cannot read the export at {location}: {exc}") from None
    # Two starts of one location at once would make two jobs; the second waits here
    # for the first to commit, then finds its job and reuses it.
    await session.execute(
        select(func.pg_advisory_xact_lock(LOCATION_LOCK, func.hashtext(location)))
    )
    job = (
        await session.execute(
            select(ImportJob)
            .where(ImportJob.location == location, ImportJob.status != "complete")
            .order_by(ImportJob.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if job is None:
        job = ImportJob(location=location, model_id=source.modelId, source_id=source.id)
        session.add(job)
        await session.flush()
    else:
        job.status = "listed"  # to be run again (shown `running` while a process holds it)
    rows = [
        {
            "import_id": job.id,
            "path": f.path,
            "kind": kind_of(f.path) or "other",
            "state": "listed",
            "listed_size": f.size,
            "etag": f.etag,
        }
        for f in files
    ]
    statement = pg_insert(ImportFile)
    changed = ImportFile.listed_size.is_distinct_from(
        statement.excluded.listed_size
    ) | ImportFile.etag.is_distinct_from(statement.excluded.etag)
    statement = statement.on_conflict_do_update(
        index_elements=[ImportFile.import_id, ImportFile.path],
        set_={
            "listed_size": statement.excluded.listed_size,
            "etag": statement.excluded.etag,
            "state": case((changed, "listed"), else_=ImportFile.state),
        },
        where=ImportFile.state != "imported",
    )
    await session.execute(statement, rows)
    return job


async def _runner_alive(session: AsyncSession, import_id: int) -> bool:
    """Whether some process holds the job's run lock (without taking it)."""
    held = await session.execute(
        text(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = CAST(:cls AS oid) AND objid = CAST(:id AS oid) AND objsubid = 2 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
        ),
        {"cls": JOB_LOCK, "id": import_id},
    )
    return bool(held.scalar_one())


async def get_progress(session: AsyncSession, import_id: int) -> ImportProgress:
    job = await session.get(ImportJob, import_id)
    if job is None:
        raise NotFound(f"no import {import_id}")
    counts = dict(
        (
            await session.execute(
                select(ImportFile.state, func.count())
                .where(ImportFile.import_id == import_id)
                .group_by(ImportFile.state)
            )
        ).all()
    )
    rows, skipped = (
        await session.execute(
            select(
                func.coalesce(func.sum(ImportFile.rows_imported), 0),
                func.coalesce(func.sum(ImportFile.rows_skipped), 0),
            ).where(ImportFile.import_id == import_id)
        )
    ).one()
    current = (
        await session.execute(
            select(ImportFile.path)
            .where(ImportFile.import_id == import_id, ImportFile.state == "downloaded")
            .limit(1)
        )
    ).scalar_one_or_none()
    status = job.status
    if status in ("listed", "running"):
        if await _runner_alive(session, import_id):
            status = "running"
        elif status == "running":
            status = "interrupted"  # its process died (or lost the database); rerun to resume
    return ImportProgress(
        import_id=import_id,
        files_total=sum(counts.values()),
        files_done=counts.get("imported", 0),
        files_failed=counts.get("failed", 0),
        rows=int(rows),
        current=current,
        status=status,
        rows_skipped=int(skipped),
    )


# --- running ------------------------------------------------------------------------------


def _external_id(row_id: str | None, model_id: str, source_id: str, path: str, lineno: int) -> str:
    """Neuronpedia's own id when it has one; otherwise a stable hash of where the row came from."""
    if row_id and len(row_id) <= 64:
        return row_id
    return hashlib.sha256(f"{model_id}/{source_id}/{path}:{lineno}".encode()).hexdigest()


def _check_key(row: Any, job: ImportJob, path: str, lineno: int) -> None:
    if row.modelId != job.model_id or row.layer != job.source_id:
        raise MalformedExportError(
            f"{path} line {lineno}: row of {row.modelId}/{row.layer} in the export of "
            f"{job.model_id}/{job.source_id}"
        )


FEATURE_COLUMNS = (
    "model_id",
    "source_id",
    "index",
    "max_act",
    "frac_nonzero",
    "pos_str",
    "pos_values",
    "neg_str",
    "neg_values",
    "freq_hist_heights",
    "freq_hist_values",
    "logits_hist_heights",
    "logits_hist_values",
    "vector",
    "hook_name",
    "default_steer_strength",
    "topk_cos_sim_indices",
    "topk_cos_sim_values",
)
FEATURE_TYPES = (
    "text",
    "text",
    "int",
    "float8",
    "float8",
    "text[]",
    "real[]",
    "text[]",
    "real[]",
    "real[]",
    "real[]",
    "real[]",
    "real[]",
    "real[]",
    "text",
    "float8",
    "int[]",
    "real[]",
)
ACTIVATION_TYPES = (
    "text",
    "text",
    "int",
    "text[]",
    "real[]",
    "float8",
    "int",
    "float8",
    "float8",
    "float8",
    "float8",
    "bigint",
    "text",
    "text",
)
EXPLANATION_COLUMNS = (
    "model_id",
    "source_id",
    "index",
    "description",
    "type_name",
    "explanation_model_name",
    "external_id",
    "embedding",
)
EXPLANATION_TYPES = ("text", "text", "int", "text", "text", "text", "text", "real[]")


def feature_records(stream: Any, path: str, job: ImportJob, counter: list[int]) -> Iterator[tuple]:
    for lineno, row in iter_rows(stream, path, kind="features"):
        assert isinstance(row, NpNeuron)
        _check_key(row, job, path, lineno)
        counter[0] += 1
        yield (
            job.model_id,
            job.source_id,
            row.index_int,
            row.maxActApprox,
            row.frac_nonzero,
            row.pos_str,
            row.pos_values,
            row.neg_str,
            row.neg_values,
            row.freq_hist_data_bar_heights,
            row.freq_hist_data_bar_values,
            row.logits_hist_data_bar_heights,
            row.logits_hist_data_bar_values,
            row.vector or None,
            row.hookName,
            10.0 if row.vectorDefaultSteerStrength is None else row.vectorDefaultSteerStrength,
            row.topkCosSimIndices,
            row.topkCosSimValues,
        )


def activation_records(
    stream: Any, path: str, job: ImportJob, counter: list[int]
) -> Iterator[ActivationRow]:
    for lineno, row in iter_rows(stream, path, kind="activations"):
        assert isinstance(row, NpActivation)
        _check_key(row, job, path, lineno)
        if len(row.tokens) != len(row.values):
            raise MalformedExportError(
                f"{path} line {lineno}: {len(row.tokens)} tokens but {len(row.values)} values"
            )
        counter[0] += 1
        yield ActivationRow(
            model_id=job.model_id,
            source_id=job.source_id,
            index=row.index_int,
            tokens=row.tokens,
            values=row.values,
            max_value=row.maxValue,
            max_value_token_index=row.maxValueTokenIndex,
            min_value=row.minValue,
            bin_min=row.binMin,
            bin_max=row.binMax,
            bin_contains=row.binContains,
            data_index=row.dataIndex,
            data_source=row.dataSource,
            external_id=_external_id(row.id, job.model_id, job.source_id, path, lineno),
        )


def explanation_records(
    stream: Any, path: str, job: ImportJob, counter: list[int]
) -> Iterator[tuple]:
    for lineno, row in iter_rows(stream, path, kind="explanations"):
        assert isinstance(row, NpExplanation)
        _check_key(row, job, path, lineno)
        counter[0] += 1
        yield (
            job.model_id,
            job.source_id,
            row.index_int,
            row.description,
            row.typeName or "imported",
            row.explanationModelName,
            _external_id(row.id, job.model_id, job.source_id, path, lineno),
            row.embedding or None,
        )


RECORDS = {
    "features": feature_records,
    "activations": activation_records,
    "explanations": explanation_records,
}
COLUMNS = {
    "features": (FEATURE_COLUMNS, FEATURE_TYPES),
    "activations": (ACTIVATION_COLUMNS, ACTIVATION_TYPES),
    "explanations": (EXPLANATION_COLUMNS, EXPLANATION_TYPES),
}
CONFLICT_KEYS = {
    "features": "(model_id, source_id, index)",
    "activations": "(external_id)",
    "explanations": "(external_id)",
}


@dataclass
class FileResult:
    rows: int  # rows in the file
    skipped: int = 0  # of those, rows not stored because their ids belong to another source
    note: str | None = None  # what to tell about the skipped rows


def _sqlstate(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    while seen is not None:
        if state := getattr(seen, "sqlstate", None):
            return str(state)
        seen = seen.__cause__ or seen.__context__
    return None


async def _missing_feature(
    session: AsyncSession, job: ImportJob, kind: str, local: Path, path: str
) -> MalformedExportError:
    """The first row of a file whose feature is not stored, named by line and index.

    Runs only after the database refused the file's rows on a foreign key: one more
    pass over the file is cheap next to a message that names nothing.
    """
    if kind == "features":
        return MalformedExportError(
            f"{path}: features of {job.model_id}/{job.source_id}, a source the database "
            "does not have (source.jsonl did not import)"
        )
    present = set(
        (
            await session.execute(
                select(Feature.index).where(
                    Feature.model_id == job.model_id, Feature.source_id == job.source_id
                )
            )
        ).scalars()
    )
    with local.open("rb") as stream:
        for lineno, row in iter_rows(stream, path, kind=kind):
            index = row.index_int  # type: ignore[attr-defined]
            if index not in present:
                return MalformedExportError(
                    f"{path} line {lineno}: {kind.removesuffix('s')} of feature index {index}, "
                    f"which {job.model_id}/{job.source_id} does not have (no row for it in "
                    "features/)"
                )
    return MalformedExportError(f"{path}: a row refers to a feature that is not stored")


async def _refusing_missing_features(
    session: AsyncSession, job: ImportJob, kind: str, local: Path, path: str, work: Awaitable[T]
) -> T:
    """Await `work` in a savepoint; a foreign-key refusal becomes the file, line and index."""
    try:
        async with session.begin_nested():
            return await work
    except (DBAPIError, asyncpg.PostgresError) as exc:
        if _sqlstate(exc) != FOREIGN_KEY_VIOLATION:
            raise
    raise await _missing_feature(session, job, kind, local, path)


async def _skipped_elsewhere(
    session: AsyncSession, kind: str, temp: str, path: str, total: int
) -> FileResult:
    """Rows the conflict clause skipped because their ids are taken by another source."""
    if kind == "features":  # keyed by (model, source, index): never another source's
        return FileResult(rows=total)
    found = (
        await session.execute(
            text(
                f"SELECT t.external_id, x.model_id, x.source_id, count(*) OVER () "
                f"FROM {temp} t JOIN {kind} x ON x.external_id = t.external_id "
                "WHERE x.model_id <> t.model_id OR x.source_id <> t.source_id LIMIT 1"
            )
        )
    ).first()
    if found is None:
        return FileResult(rows=total)
    external_id, model_id, source_id, skipped = found
    return FileResult(
        rows=total,
        skipped=int(skipped),
        note=(
            f"{path}: {skipped} of {total} rows skipped: their ids are already taken by "
            f"another model or source (id {external_id!r} is {model_id}/{source_id}'s)"
        ),
    )


async def _merge(
    session: AsyncSession, job: ImportJob, kind: str, local: Path, path: str, records: Iterator
) -> FileResult:
    """COPY into a temp table, then insert what is not there yet; count what was skipped."""
    columns, types = COLUMNS[kind]
    temp = f"_import_{kind}"
    column_sql = ", ".join(f'"{c}" {t}' for c, t in zip(columns, types, strict=True))
    await session.execute(text(f"CREATE TEMP TABLE {temp} ({column_sql}) ON COMMIT DROP"))
    await copy_rows(session, temp, columns, records)
    stored = [c for c in columns if c != "embedding"]  # embeddings have their own table
    cols = ", ".join(f'"{c}"' for c in stored)
    insert = text(
        f"INSERT INTO {kind} ({cols}) SELECT {cols} FROM {temp} "
        f"ON CONFLICT {CONFLICT_KEYS[kind]} DO NOTHING"
    )
    await _refusing_missing_features(session, job, kind, local, path, session.execute(insert))
    total = (await session.execute(text(f"SELECT count(*) FROM {temp}"))).scalar_one()
    return await _skipped_elsewhere(session, kind, temp, path, int(total))


async def _copy_direct_or_merge(
    session: AsyncSession, job: ImportJob, kind: str, local: Path, path: str
) -> FileResult:
    """COPY straight into the table; if a row exists already, merge through a temp table.

    A first import never conflicts, and COPY into the table is about twice as fast
    as COPY into a temp table plus `INSERT ... SELECT`. A re-import (or a file
    redone after a crash between commit and cleanup) hits the unique key: the
    savepoint rolls the COPY back and the slow path skips the rows already there.
    """
    counter = [0]

    def records() -> Iterator[tuple]:  # re-opened on the slow path: a generator cannot replay
        counter[0] = 0
        with local.open("rb") as stream:
            yield from RECORDS[kind](stream, path, job, counter)

    columns, _ = COLUMNS[kind]
    copy = (
        copy_activations(session, records())
        if kind == "activations"
        else copy_rows(session, kind, columns, records())
    )
    try:
        await _refusing_missing_features(session, job, kind, local, path, copy)
        return FileResult(rows=counter[0])
    except asyncpg.UniqueViolationError:
        logger.info("%s: rows already present; merging", path)
    return await _merge(session, job, kind, local, path, records())


async def _import_rows(
    session: AsyncSession, job: ImportJob, kind: str, local: Path, path: str
) -> FileResult:
    """Bulk-insert one batch file."""
    if kind in ("features", "activations"):
        return await _copy_direct_or_merge(session, job, kind, local, path)
    if kind != "explanations":
        raise MalformedExportError(f"{path}: not an export batch file")
    counter = [0]
    with local.open("rb") as stream:
        result = await _merge(
            session, job, kind, local, path, explanation_records(stream, path, job, counter)
        )
    dims = (
        (
            await session.execute(
                text(
                    "SELECT DISTINCT cardinality(embedding) FROM _import_explanations "
                    "WHERE embedding IS NOT NULL"
                )
            )
        )
        .scalars()
        .all()
    )
    if dims:
        expected = (
            await session.execute(
                text("SELECT dimensions FROM embedding_models WHERE name = :name"),
                {"name": NEURONPEDIA_EMBEDDING_MODEL},
            )
        ).scalar_one_or_none()
        if expected is None or set(dims) != {expected}:
            raise MalformedExportError(
                f"{path}: embeddings of {sorted(dims)} dims; "
                f"{NEURONPEDIA_EMBEDDING_MODEL} stores {expected}"
            )
        # Joined on the source too: a row skipped for another source's id keeps its own.
        await session.execute(
            text(
                "INSERT INTO explanation_embeddings "
                "(explanation_id, embedding_model, embedding) "
                "SELECT x.id, :name, CAST(t.embedding AS vector) "
                "FROM _import_explanations t "
                "JOIN explanations x ON x.external_id = t.external_id "
                "AND x.model_id = t.model_id AND x.source_id = t.source_id "
                "WHERE t.embedding IS NOT NULL "
                "ON CONFLICT (explanation_id, embedding_model) DO NOTHING"
            ),
            {"name": NEURONPEDIA_EMBEDDING_MODEL},
        )
    return result


def _source_layer(source_id: str) -> int:
    head = source_id.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


async def _import_config(
    session: AsyncSession, job: ImportJob, kind: str, local: Path, path: str
) -> int:
    """Upsert the small config rows (model, release, source set, source); never overwrite."""
    with local.open("rb") as stream:
        rows = [row for _, row in iter_rows(stream, path, kind=kind)]
    if not rows:
        raise MalformedExportError(f"{path}: no rows; it should hold the export's {kind} row")
    for row in rows:
        if isinstance(row, NpModel):
            values: dict[str, Any] = {
                "id": row.id,
                "display_name": row.displayName or row.id,
                "hf_name": row.tlensId,
                "layers": row.layers,
                "d_model": row.dimension or 0,
                "instruct": row.instruct,
            }
            table: Any = Model
        elif isinstance(row, NpSourceRelease):
            values = {
                "name": row.name,
                "description": row.description,
                "urls": row.urls,
                "creator_name": row.creatorName,
            }
            table = SourceRelease
        elif isinstance(row, NpSourceSet):
            if row.releaseName:
                await session.execute(
                    pg_insert(SourceRelease).values(name=row.releaseName).on_conflict_do_nothing()
                )
            values = {
                "model_id": row.modelId,
                "name": row.name,
                "description": row.description,
                "type": row.type,
                "release_name": row.releaseName,
                "allow_inference_search": row.allowInferenceSearch,
            }
            table = SourceSet
        else:
            assert isinstance(row, NpSource)
            config = row.saelensConfig or {}
            values = {
                "model_id": row.modelId,
                "id": row.id,
                "set_name": row.setName,
                # SAELens 6 keeps the hook under `metadata`; older configs at the top.
                "hook_name": str(
                    config.get("hook_name") or (config.get("metadata") or {}).get("hook_name") or ""
                ),
                "layer": int(config.get("hook_layer") or _source_layer(row.id)),
                "architecture": str(config.get("architecture") or "standard"),
                "d_sae": int(config.get("d_sae") or 0),
                "weights_uri": (
                    f"{row.saelensRelease}:{row.saelensSaeId}"
                    if row.saelensRelease and row.saelensSaeId
                    else None
                ),
                "saelens_config": config,
                "has_dashboards": row.hasDashboards,
                "inference_enabled": row.inferenceEnabled,
                "num_prompts": row.num_prompts,
                "num_tokens_in_prompt": row.num_tokens_in_prompt,
                "dataset": row.dataset,
            }
            table = Source
        await session.execute(pg_insert(table).values(**values).on_conflict_do_nothing())
    return len(rows)


async def _set_file(
    sessionmaker: async_sessionmaker[AsyncSession], import_id: int, path: str, **values: Any
) -> None:
    async with sessionmaker.begin() as session:
        await session.execute(
            update(ImportFile)
            .where(ImportFile.import_id == import_id, ImportFile.path == path)
            .values(**values)
        )


async def _set_job(
    sessionmaker: async_sessionmaker[AsyncSession], import_id: int, **values: Any
) -> None:
    async with sessionmaker.begin() as session:
        await session.execute(update(ImportJob).where(ImportJob.id == import_id).values(**values))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@asynccontextmanager
async def _job_lock(
    sessionmaker: async_sessionmaker[AsyncSession], import_id: int
) -> AsyncIterator[None]:
    """Hold the job's run lock on a connection of its own for as long as the run lasts.

    A session-level advisory lock outlives transactions and dies with its connection,
    so a `kill -9` frees it at once and nothing needs cleaning up.
    """
    engine: AsyncEngine = sessionmaker.kw["bind"]
    async with engine.connect() as connection:
        # A process killed on this machine closes its socket, and the server drops the lock
        # at once; keepalives make it notice within a minute when a whole machine vanishes.
        for setting in ("tcp_keepalives_idle = 30", "tcp_keepalives_interval = 10"):
            await connection.execute(text(f"SET {setting}"))
        held = await connection.scalar(select(func.pg_try_advisory_lock(JOB_LOCK, import_id)))
        await connection.commit()
        if not held:
            raise Conflict(
                f"import {import_id} is already being run by another process; wait for it "
                "to finish (the admin page shows its progress), then run it again to retry "
                "anything that failed"
            )
        try:
            yield
        finally:
            try:
                await connection.execute(select(func.pg_advisory_unlock(JOB_LOCK, import_id)))
                await connection.commit()
            except DATABASE_ERRORS:
                await connection.invalidate()  # the lock went with the connection


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return first or type(orig).__name__


async def run_import(
    sessionmaker: async_sessionmaker[AsyncSession],
    import_id: int,
    *,
    work_dir: Path,
    location_factory: LocationFactory = open_location,
    on_progress: ProgressCallback | None = None,
    delay_between_files_s: float = 0.0,
) -> ImportProgress:
    """Import every file not yet imported; safe to run again after any crash.

    Raises `Conflict` if another process is running the same job, and
    `DatabaseUnavailable` if the database goes away (the file being imported is left
    as it was, to be retried). `delay_between_files_s` exists for tests that kill an
    import mid-way.
    """
    try:
        async with _job_lock(sessionmaker, import_id):
            return await _run_locked(
                sessionmaker,
                import_id,
                work_dir=Path(work_dir),
                location_factory=location_factory,
                on_progress=on_progress,
                delay_between_files_s=delay_between_files_s,
            )
    except DATABASE_ERRORS as exc:
        if not lost_connection(exc):
            raise
        raise DatabaseUnavailable(
            f"the database went away during import {import_id} ({_reason(exc)}); nothing "
            "half-done was kept: run the import again when the database is back"
        ) from None


async def _run_locked(
    sessionmaker: async_sessionmaker[AsyncSession],
    import_id: int,
    *,
    work_dir: Path,
    location_factory: LocationFactory,
    on_progress: ProgressCallback | None,
    delay_between_files_s: float,
) -> ImportProgress:
    async with sessionmaker() as session:
        job = await session.get(ImportJob, import_id)
        if job is None:
            raise NotFound(f"no import {import_id}")
        files = (
            (await session.execute(select(ImportFile).where(ImportFile.import_id == import_id)))
            .scalars()
            .all()
        )
    files = sorted(files, key=lambda f: sort_key(f.path))
    try:
        location = await asyncio.to_thread(location_factory, job.location)
    except LocationError as exc:
        raise InvalidInput(f"cannot read the export at {job.location}: {exc}") from None
    scratch = work_dir / f"import-{import_id}"  # this job's alone: the run lock guards it
    scratch.mkdir(parents=True, exist_ok=True)
    await _set_job(sessionmaker, import_id, status="running", error=None)

    manifest: Manifest | None = None
    if any(f.path == MANIFEST_NAME for f in files):
        try:
            manifest = read_manifest(await asyncio.to_thread(location.read_bytes, MANIFEST_NAME))
        except (LocationError, MalformedExportError) as exc:
            logger.warning(
                "import %s: manifest unreadable (%s); importing without it", import_id, exc
            )
    expected = manifest.by_path() if manifest else {}

    blocked: str | None = None  # a config file that failed: what follows needs its rows
    for file in files:
        if file.state == "imported":
            continue
        try:
            stopping.check()
            if blocked is not None:
                raise MalformedExportError(
                    f"{file.path}: not imported because {blocked} did not import "
                    "(see its error); fix that and resume"
                )
            await _import_file(
                sessionmaker, job, file, scratch / file.path, location, expected.get(file.path)
            )
        except stopping.Stopped as exc:
            await _set_job(sessionmaker, import_id, status="stopped", error=str(exc))
            raise exc.at(f"at {file.path}; rerun to resume") from None
        except (MalformedExportError, LocationError) as exc:
            await _fail_file(sessionmaker, import_id, file.path, str(exc))
            blocked = blocked or (None if file.kind in BATCH_KINDS else file.path)
        except DATABASE_ERRORS as exc:
            if lost_connection(exc):
                raise DatabaseUnavailable(
                    f"the database went away while importing {file.path} ({_reason(exc)}); "
                    "the file is left to retry: run the import again when the database is back"
                ) from None
            if isinstance(exc, OSError):
                raise
            await _fail_file(
                sessionmaker,
                import_id,
                file.path,
                f"{file.path}: the database refused its rows ({_reason(exc)})",
            )
            blocked = blocked or (None if file.kind in BATCH_KINDS else file.path)
        if on_progress is not None:
            async with sessionmaker() as session:
                await on_progress(await get_progress(session, import_id))
        if delay_between_files_s:
            await asyncio.sleep(delay_between_files_s)

    async with sessionmaker() as session:
        progress = await get_progress(session, import_id)
    if progress.files_failed or progress.files_done < progress.files_total:
        status = "partial"
        missing = progress.files_total - progress.files_done
        error = f"{missing} file(s) not imported; see each file's error"
    elif progress.rows_skipped:
        status = "partial"
        error = (
            f"{progress.rows_skipped} row(s) skipped: their ids are already taken by another "
            "model or source; see the files' messages"
        )
    else:
        status, error = "complete", None
        shutil.rmtree(scratch, ignore_errors=True)
    await _set_job(sessionmaker, import_id, status=status, error=error, finished_at=func.now())
    progress.status = status
    if on_progress is not None:
        await on_progress(progress)
    return progress


async def _import_file(
    sessionmaker: async_sessionmaker[AsyncSession],
    job: ImportJob,
    file: ImportFile,
    local: Path,
    location: ExportLocation,
    want: Any,
) -> None:
    """Download one file (unless a checked download is on disk) and store its rows.

    The rows and the file's move to `imported` commit in one transaction, or not at all.
    """
    if file.path == MANIFEST_NAME:
        await _set_file(
            sessionmaker, job.id, file.path, state="imported", rows_imported=0, error=None
        )
        return
    if (
        file.state != "downloaded"
        or not await asyncio.to_thread(local.exists)
        or (file.sha256 and await asyncio.to_thread(_file_sha256, local) != file.sha256)
    ):
        listed = ListedFile(file.path, file.listed_size, file.etag)
        got = await asyncio.to_thread(
            location.download, file.path, local, listed, between_chunks=stopping.check
        )
        if want is not None and (want.sha256 != got.sha256 or want.size != got.size):
            raise MalformedExportError(
                f"{file.path}: downloaded {got.size} bytes with sha256 {got.sha256[:12]}…, "
                f"the manifest says {want.size} bytes, {want.sha256[:12]}…"
            )
        await _set_file(
            sessionmaker,
            job.id,
            file.path,
            state="downloaded",
            size=got.size,
            sha256=got.sha256,
            error=None,
        )
    async with sessionmaker.begin() as session:
        if file.kind in BATCH_KINDS:
            result = await _import_rows(session, job, file.kind, local, file.path)
        else:
            result = FileResult(
                rows=await _import_config(session, job, file.kind, local, file.path)
            )
        await session.execute(
            update(ImportFile)
            .where(ImportFile.import_id == job.id, ImportFile.path == file.path)
            .values(
                state="imported",
                rows_imported=result.rows,
                rows_skipped=result.skipped,
                error=result.note,
            )
        )
    if result.note:
        logger.warning("import %s: %s", job.id, result.note)
    await asyncio.to_thread(local.unlink, missing_ok=True)


async def _fail_file(
    sessionmaker: async_sessionmaker[AsyncSession], import_id: int, path: str, message: str
) -> None:
    logger.warning("import %s: %s", import_id, message)
    await _set_file(sessionmaker, import_id, path, state="failed", error=message)


async def reset_failed(session: AsyncSession, import_id: int) -> int:
    """Put failed files back to `listed` so the next run retries them.

    Refused while another process runs the job: it has passed those files already
    and would end without them.
    """
    free = await session.scalar(select(func.pg_try_advisory_xact_lock(JOB_LOCK, import_id)))
    if not free:
        raise Conflict(
            f"import {import_id} is already being run by another process; wait for it to "
            "finish (the admin page shows its progress), then run it again to retry what failed"
        )
    result = await session.execute(
        update(ImportFile)
        .where(ImportFile.import_id == import_id, ImportFile.state == "failed")
        .values(state="listed", error=None)
    )
    return result.rowcount or 0


# --- verifying ----------------------------------------------------------------------------


async def verify_import(
    session: AsyncSession,
    import_id: int,
    *,
    location_factory: LocationFactory = open_location,
) -> VerifyReport:
    """Compare what was imported with the export's manifest and with the database."""
    job = await session.get(ImportJob, import_id)
    if job is None:
        raise NotFound(f"no import {import_id}")
    files = {
        f.path: f
        for f in (
            await session.execute(select(ImportFile).where(ImportFile.import_id == import_id))
        ).scalars()
    }
    report = VerifyReport(import_id=import_id, ok=True)
    for path, file in sorted(files.items(), key=lambda item: sort_key(item[0])):
        if file.state != "imported":
            report.differences.append(
                f"{path}: {file.state}" + (f" ({file.error})" if file.error else "")
            )
        elif file.rows_skipped:
            report.differences.append(file.error or f"{path}: {file.rows_skipped} rows skipped")
        if file.listed_size is not None and file.size is not None and file.size != file.listed_size:
            report.differences.append(
                f"{path}: {file.size} bytes downloaded, the listing says {file.listed_size}"
            )
    manifest: Manifest | None = None
    if MANIFEST_NAME in files:
        try:
            location = await asyncio.to_thread(location_factory, job.location)
            manifest = read_manifest(await asyncio.to_thread(location.read_bytes, MANIFEST_NAME))
        except (LocationError, MalformedExportError) as exc:
            report.differences.append(f"{MANIFEST_NAME}: cannot read ({exc})")
    if manifest is not None:
        for entry in manifest.files:
            file = files.get(entry.path)
            if file is None:
                report.differences.append(f"{entry.path}: in the manifest but never listed")
                continue
            if file.sha256 is not None and file.sha256 != entry.sha256:
                report.differences.append(f"{entry.path}: sha256 differs from the manifest")
            if file.size is not None and file.size != entry.size:
                report.differences.append(
                    f"{entry.path}: {file.size} bytes, the manifest says {entry.size}"
                )
            if file.state == "imported" and file.rows_imported != entry.rows:
                report.differences.append(
                    f"{entry.path}: {file.rows_imported} rows, the manifest says {entry.rows}"
                )

    tables = {"features": Feature, "activations": Activation, "explanations": Explanation}
    for kind, table in tables.items():
        in_files = sum(
            (f.rows_imported or 0)
            for f in files.values()
            if f.kind == kind and f.state == "imported"
        )
        skipped = sum(f.rows_skipped for f in files.values() if f.kind == kind)
        if skipped:
            report.differences.append(
                f"{kind}: {skipped} of {in_files} rows were skipped: their ids are already "
                "taken by another model or source, so they are not in this source"
            )
        in_db = (
            await session.execute(
                select(func.count())
                .select_from(table)
                .where(table.model_id == job.model_id, table.source_id == job.source_id)
            )
        ).scalar_one()
        report.counts[kind] = {"files": in_files, "database": int(in_db)}
        if in_db < in_files:
            report.differences.append(
                f"{kind}: {in_files} rows in the files, {in_db} in the database"
            )
    embedded = (
        await session.execute(
            select(func.count())
            .select_from(ExplanationEmbedding)
            .join(Explanation)
            .where(
                Explanation.model_id == job.model_id,
                Explanation.source_id == job.source_id,
                ExplanationEmbedding.embedding_model == NEURONPEDIA_EMBEDDING_MODEL,
            )
        )
    ).scalar_one()
    report.counts["embeddings"] = {"files": -1, "database": int(embedded)}
    report.ok = not report.differences
    return report


async def list_imports(session: AsyncSession, limit: int = 50) -> list[ImportJob]:
    return list(
        (
            await session.execute(select(ImportJob).order_by(ImportJob.id.desc()).limit(limit))
        ).scalars()
    )


async def delete_import_record(session: AsyncSession, import_id: int) -> None:
    await session.execute(delete(ImportJob).where(ImportJob.id == import_id))
