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
  export's manifest, and row counts in the database with the files.
- A stop request (`interpedia_core.stopping`: Ctrl-C, SIGTERM, a worker shutting
  down) abandons the file in hand (its download or its COPY, whose transaction rolls
  back) and marks the import `stopped`; a rerun resumes with that file.

Imported explanation embeddings are kept under `NEURONPEDIA_EMBEDDING_MODEL`.
"""

import asyncio
import hashlib
import logging
import shutil
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from interpedia_core import stopping
from interpedia_core.errors import InvalidInput, NotFound
from interpedia_db.connect import driver_connection
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
from interpedia_formats.locations import ExportLocation, LocationError, open_location
from interpedia_formats.neuronpedia_export import (
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
from interpedia_webapi import copy_text

logger = logging.getLogger(__name__)

LocationFactory = Callable[[str], ExportLocation]
ProgressCallback = Callable[["ImportProgress"], Awaitable[None]]


@dataclass
class ImportProgress:
    import_id: int
    files_total: int
    files_done: int
    files_failed: int
    rows: int
    current: str | None
    status: str


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

    Reusing the unfinished job is what makes "import again" a resume.
    """
    try:
        opened = await asyncio.to_thread(location_factory, location)
        files = await asyncio.to_thread(opened.list_files)
        source = await asyncio.to_thread(_read_source_row, opened)
    except (LocationError, MalformedExportError) as exc:
        raise InvalidInput(f"cannot read the export at {location}: {exc}") from None
    if not files:
        raise InvalidInput(f"{location} holds no export files")
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
    rows = [
        {"import_id": job.id, "path": f.path, "kind": kind_of(f.path) or "other", "state": "listed"}
        for f in files
    ]
    statement = pg_insert(ImportFile).on_conflict_do_nothing(
        index_elements=[ImportFile.import_id, ImportFile.path]
    )
    await session.execute(statement, rows)
    return job


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
    rows = (
        await session.execute(
            select(func.coalesce(func.sum(ImportFile.rows_imported), 0)).where(
                ImportFile.import_id == import_id
            )
        )
    ).scalar_one()
    current = (
        await session.execute(
            select(ImportFile.path)
            .where(ImportFile.import_id == import_id, ImportFile.state == "downloaded")
            .limit(1)
        )
    ).scalar_one_or_none()
    return ImportProgress(
        import_id=import_id,
        files_total=sum(counts.values()),
        files_done=counts.get("imported", 0),
        files_failed=counts.get("failed", 0),
        rows=int(rows),
        current=current,
        status=job.status,
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
ACTIVATION_COLUMNS = (
    "model_id",
    "source_id",
    "index",
    "tokens",
    "values",
    "max_value",
    "max_value_token_index",
    "min_value",
    "bin_min",
    "bin_max",
    "bin_contains",
    "data_index",
    "data_source",
    "external_id",
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
) -> Iterator[tuple]:
    for lineno, row in iter_rows(stream, path, kind="activations"):
        assert isinstance(row, NpActivation)
        _check_key(row, job, path, lineno)
        if len(row.tokens) != len(row.values):
            raise MalformedExportError(
                f"{path} line {lineno}: {len(row.tokens)} tokens but {len(row.values)} values"
            )
        counter[0] += 1
        yield (
            job.model_id,
            job.source_id,
            row.index_int,
            row.tokens,
            row.values,
            row.maxValue,
            row.maxValueTokenIndex,
            row.minValue,
            row.binMin,
            row.binMax,
            row.binContains,
            row.dataIndex,
            row.dataSource,
            _external_id(row.id, job.model_id, job.source_id, path, lineno),
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


async def _copy_into_temp(
    session: AsyncSession,
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    records: Iterator[tuple],
) -> None:
    """COPY `records` into a temp table that disappears with the transaction."""
    column_sql = ", ".join(f'"{c}" {t}' for c, t in zip(columns, types, strict=True))
    await session.execute(text(f"CREATE TEMP TABLE {table} ({column_sql}) ON COMMIT DROP"))
    driver = await driver_connection(session)
    await driver.copy_to_table(
        table, source=copy_text.async_chunks(records), columns=list(columns), format="text"
    )


CONFLICT_KEYS = {"features": "(model_id, source_id, index)", "activations": "(external_id)"}


async def _copy_direct_or_merge(
    session: AsyncSession, table: str, records: Callable[[], Iterator[tuple]]
) -> None:
    """COPY straight into `table`; if a row exists already, merge through a temp table.

    A first import never conflicts, and COPY into the table is about twice as fast
    as COPY into a temp table plus `INSERT ... SELECT`. A re-import (or a file
    redone after a crash between commit and cleanup) hits the unique key: the
    savepoint rolls the COPY back and the slow path skips the rows already there.
    """
    columns = FEATURE_COLUMNS if table == "features" else ACTIVATION_COLUMNS
    types = FEATURE_TYPES if table == "features" else ACTIVATION_TYPES
    try:
        async with session.begin_nested():
            driver = await driver_connection(session)
            await driver.copy_to_table(
                table,
                source=copy_text.async_chunks(records()),
                columns=list(columns),
                format="text",
            )
        return
    except asyncpg.UniqueViolationError:
        logger.info("%s: rows already present; merging", table)
    temp = f"_import_{table}"
    await _copy_into_temp(session, temp, columns, types, records())
    cols = ", ".join(f'"{c}"' for c in columns)
    await session.execute(
        text(
            f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {temp} "
            f"ON CONFLICT {CONFLICT_KEYS[table]} DO NOTHING"
        )
    )


async def _import_rows(
    session: AsyncSession, job: ImportJob, kind: str, local: Path, path: str
) -> int:
    """Bulk-insert one batch file; returns the number of rows in the file."""
    counter = [0]
    with local.open("rb") as stream:
        if kind in ("features", "activations"):
            # Re-opened on the slow path: a generator cannot be replayed.
            def records() -> Iterator[tuple]:
                counter[0] = 0
                with local.open("rb") as again:
                    make = feature_records if kind == "features" else activation_records
                    yield from make(again, path, job, counter)

            await _copy_direct_or_merge(session, kind, records)
        elif kind == "explanations":
            await _copy_into_temp(
                session,
                "_import_explanations",
                EXPLANATION_COLUMNS,
                EXPLANATION_TYPES,
                explanation_records(stream, path, job, counter),
            )
            cols = ", ".join(f'"{c}"' for c in EXPLANATION_COLUMNS[:-1])
            await session.execute(
                text(
                    f"INSERT INTO explanations ({cols}) SELECT {cols} FROM _import_explanations "
                    "ON CONFLICT (external_id) DO NOTHING"
                )
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
                await session.execute(
                    text(
                        "INSERT INTO explanation_embeddings "
                        "(explanation_id, embedding_model, embedding) "
                        "SELECT x.id, :name, CAST(t.embedding AS vector) "
                        "FROM _import_explanations t "
                        "JOIN explanations x ON x.external_id = t.external_id "
                        "WHERE t.embedding IS NOT NULL "
                        "ON CONFLICT (explanation_id, embedding_model) DO NOTHING"
                    ),
                    {"name": NEURONPEDIA_EMBEDDING_MODEL},
                )
        else:
            raise MalformedExportError(f"{path}: not an export batch file")
    return counter[0]


def _source_layer(source_id: str) -> int:
    head = source_id.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


async def _import_config(
    session: AsyncSession, job: ImportJob, kind: str, local: Path, path: str
) -> int:
    """Upsert the small config rows (model, release, source set, source); never overwrite."""
    with local.open("rb") as stream:
        rows = [row for _, row in iter_rows(stream, path, kind=kind)]
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

    `delay_between_files_s` exists for tests that kill an import mid-way.
    """
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
    location = await asyncio.to_thread(location_factory, job.location)
    scratch = Path(work_dir) / f"import-{import_id}"
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

    for file in files:
        if file.state == "imported":
            continue
        local = scratch / file.path
        try:
            stopping.check()
            if file.path == MANIFEST_NAME:
                await _set_file(
                    sessionmaker,
                    import_id,
                    file.path,
                    state="imported",
                    rows_imported=0,
                    error=None,
                )
                continue
            # (Re)download unless a finished download of the right checksum is on disk.
            if (
                file.state != "downloaded"
                or not local.exists()
                or (file.sha256 and await asyncio.to_thread(_file_sha256, local) != file.sha256)
            ):
                got = await asyncio.to_thread(
                    location.download, file.path, local, between_chunks=stopping.check
                )
                want = expected.get(file.path)
                if want is not None and (want.sha256 != got.sha256 or want.size != got.size):
                    raise MalformedExportError(
                        f"{file.path}: downloaded {got.size} bytes with sha256 {got.sha256[:12]}…, "
                        f"the manifest says {want.size} bytes, {want.sha256[:12]}…"
                    )
                await _set_file(
                    sessionmaker,
                    import_id,
                    file.path,
                    state="downloaded",
                    size=got.size,
                    sha256=got.sha256,
                    error=None,
                )
            # The rows and the state change commit together, or not at all.
            async with sessionmaker.begin() as session:
                if file.kind in ("features", "activations", "explanations"):
                    rows = await _import_rows(session, job, file.kind, local, file.path)
                else:
                    rows = await _import_config(session, job, file.kind, local, file.path)
                await session.execute(
                    update(ImportFile)
                    .where(ImportFile.import_id == import_id, ImportFile.path == file.path)
                    .values(state="imported", rows_imported=rows, error=None)
                )
            local.unlink(missing_ok=True)
        except stopping.Stopped as exc:
            await _set_job(sessionmaker, import_id, status="stopped", error=str(exc))
            raise exc.at(f"at {file.path}; rerun to resume") from None
        except (MalformedExportError, LocationError) as exc:
            await _fail_file(sessionmaker, import_id, file.path, str(exc))
        except (DBAPIError, asyncpg.PostgresError) as exc:
            orig = getattr(exc, "orig", None) or exc
            reason = str(orig).strip().splitlines()[0] if str(orig).strip() else type(exc).__name__
            await _fail_file(
                sessionmaker,
                import_id,
                file.path,
                f"{file.path}: the database refused its rows ({reason})",
            )
        if on_progress is not None:
            async with sessionmaker() as session:
                await on_progress(await get_progress(session, import_id))
        if delay_between_files_s:
            await asyncio.sleep(delay_between_files_s)

    async with sessionmaker() as session:
        progress = await get_progress(session, import_id)
    if progress.files_failed:
        status, error = "partial", f"{progress.files_failed} file(s) failed; see each file's error"
    else:
        status, error = "complete", None
        shutil.rmtree(scratch, ignore_errors=True)
    await _set_job(sessionmaker, import_id, status=status, error=error, finished_at=func.now())
    progress.status = status
    if on_progress is not None:
        await on_progress(progress)
    return progress


async def _fail_file(
    sessionmaker: async_sessionmaker[AsyncSession], import_id: int, path: str, message: str
) -> None:
    logger.warning("import %s: %s", import_id, message)
    await _set_file(sessionmaker, import_id, path, state="failed", error=message)


async def reset_failed(session: AsyncSession, import_id: int) -> int:
    """Put failed files back to `listed` so the next run retries them."""
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
