"""The admin import: list what can be imported, start/resume, verify, follow progress (SSE)."""

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from interpedia_core.errors import InvalidInput
from interpedia_core.sse import event_stream
from interpedia_db.models import ImportFile, ImportJob
from interpedia_formats.locations import LocationError, discover_sources
from interpedia_webapi import feature_import, import_runner
from interpedia_webapi.deps import AdminUser, SessionDep, SettingsDep
from interpedia_webapi.schemas import (
    AvailableSource,
    ImportDetail,
    ImportFileInfo,
    ImportInfo,
    ImportStartRequest,
    VerifyResponse,
)

router = APIRouter(prefix="/admin", tags=["admin import"])


def _info(job: ImportJob, progress: feature_import.ImportProgress) -> ImportInfo:
    return ImportInfo(
        id=job.id,
        location=job.location,
        modelId=job.model_id,
        sourceId=job.source_id,
        status=progress.status,
        error=job.error,
        filesTotal=progress.files_total,
        filesDone=progress.files_done,
        filesFailed=progress.files_failed,
        rows=progress.rows,
        rowsSkipped=progress.rows_skipped,
        current=progress.current,
    )


@router.get("/import/available")
async def import_available(
    admin: AdminUser,
    settings: SettingsDep,
    location: str | None = Query(default=None, max_length=2000),
) -> list[AvailableSource]:
    """Exports found under `location` (or every configured import root)."""
    roots = [location] if location else settings.import_roots
    found: list[AvailableSource] = []
    for root in roots:
        try:
            sources = await asyncio.to_thread(discover_sources, root, s3=settings.s3_options)
        except LocationError as exc:
            raise InvalidInput(str(exc)) from None
        found += [AvailableSource(modelId=m, sourceId=s, location=loc) for m, s, loc in sources]
    return found


@router.get("/imports")
async def imports_list(session: SessionDep, admin: AdminUser) -> list[ImportInfo]:
    return [
        _info(job, await feature_import.get_progress(session, job.id))
        for job in await feature_import.list_imports(session)
    ]


@router.post("/imports")
async def imports_start(
    body: ImportStartRequest,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminUser,
) -> ImportInfo:
    """Start importing an export, or resume the unfinished import of the same location."""
    job = await feature_import.start_import(
        session,
        body.location,
        location_factory=settings.open_export,
    )
    await session.commit()
    await import_runner.launch(request.app, job.id)
    return _info(job, await feature_import.get_progress(session, job.id))


@router.get("/imports/{import_id}")
async def imports_get(import_id: int, session: SessionDep, admin: AdminUser) -> ImportDetail:
    progress = await feature_import.get_progress(session, import_id)
    job = await session.get(ImportJob, import_id)
    assert job is not None
    files = (
        (await session.execute(select(ImportFile).where(ImportFile.import_id == import_id)))
        .scalars()
        .all()
    )
    return ImportDetail(
        **_info(job, progress).model_dump(),
        files=[
            ImportFileInfo(
                path=f.path,
                kind=f.kind,
                state=f.state,
                size=f.size,
                sha256=f.sha256,
                rows=f.rows_imported,
                rowsSkipped=f.rows_skipped,
                error=f.error,
            )
            for f in files
        ],
    )


@router.post("/imports/{import_id}/resume")
async def imports_resume(
    import_id: int, request: Request, session: SessionDep, admin: AdminUser
) -> ImportInfo:
    """Retry failed files and continue with the rest."""
    await feature_import.get_progress(session, import_id)  # 404 if unknown
    await feature_import.reset_failed(session, import_id)
    await session.commit()
    await import_runner.launch(request.app, import_id)
    job = await session.get(ImportJob, import_id)
    assert job is not None
    return _info(job, await feature_import.get_progress(session, import_id))


@router.post("/imports/{import_id}/verify")
async def imports_verify(
    import_id: int, session: SessionDep, settings: SettingsDep, admin: AdminUser
) -> VerifyResponse:
    report = await feature_import.verify_import(
        session,
        import_id,
        location_factory=settings.open_export,
    )
    return VerifyResponse(
        importId=report.import_id,
        ok=report.ok,
        differences=report.differences,
        counts=report.counts,
    )


@router.get("/imports/{import_id}/events")
async def imports_events(
    import_id: int, request: Request, session: SessionDep, admin: AdminUser
) -> StreamingResponse:
    """Server-sent progress events until the import stops running."""
    await feature_import.get_progress(session, import_id)  # 404 before the stream starts
    sessionmaker = request.app.state.sessionmaker

    async def events() -> AsyncGenerator[dict[str, Any], None]:
        last = None
        while True:
            async with sessionmaker() as own:
                progress = await feature_import.get_progress(own, import_id)
            if progress.__dict__ != last:
                yield progress.__dict__
                last = progress.__dict__
            if progress.status not in ("running", "listed"):
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.5)

    return event_stream(events())
