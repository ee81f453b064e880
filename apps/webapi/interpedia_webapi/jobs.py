"""Queued work of the web API (namespace `webapi`): imports, run by `interpedia worker`."""

import procrastinate

from interpedia_jobs.progress import report_progress
from interpedia_jobs.retry import ResumableRetry
from interpedia_jobs.worker import resources_of
from interpedia_webapi import feature_import
from interpedia_webapi.settings import WebapiSettings

blueprint = procrastinate.Blueprint()


@blueprint.task(
    name="import_source", queue="imports", pass_context=True, retry=ResumableRetry(max_attempts=3)
)
async def import_source(context: procrastinate.JobContext, import_id: int) -> None:
    """Import (or resume importing) one export; safe to run twice, file by file."""
    resources = resources_of(context)
    settings = WebapiSettings()  # built here, in the worker, from its environment
    sessionmaker = resources.sessionmaker
    job_id = context.job.id

    async def on_progress(progress: feature_import.ImportProgress) -> None:
        if job_id is None:
            return
        async with sessionmaker.begin() as session:
            await report_progress(
                session,
                job_id,
                done=progress.files_done,
                total=progress.files_total,
                message=progress.current or progress.status,
                details={"import_id": import_id, "rows": progress.rows},
            )

    await feature_import.run_import(
        sessionmaker,
        import_id,
        work_dir=settings.import_scratch,
        on_progress=on_progress,
        location_factory=settings.open_export,
    )
