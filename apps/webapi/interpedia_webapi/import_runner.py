"""Where an import runs: in this process (a background task) or as a queued job.

`inline` suits one-machine installs and tests; `queue` hands the work to
`interpedia worker` processes through Procrastinate (see `jobs.py`). Either way
the work is `feature_import.run_import`, which is safe to run twice.
"""

import asyncio
import logging

from fastapi import FastAPI

from interpedia_core.errors import InterpediaError
from interpedia_webapi import feature_import
from interpedia_webapi.settings import WebapiSettings

logger = logging.getLogger(__name__)


async def launch(app: FastAPI, import_id: int) -> None:
    settings: WebapiSettings = app.state.settings
    if settings.import_runner == "queue":
        from interpedia_jobs.queue import create_job_app, defer_job

        job_app = create_job_app(app.state.database_url, load_tasks=False)
        async with job_app.open_async():
            await defer_job(
                job_app,
                "webapi:import_source",
                queue="imports",
                queueing_lock=f"import:{import_id}",
                import_id=import_id,
            )
        return
    tasks: dict[int, asyncio.Task[None]] = app.state.import_tasks
    running = tasks.get(import_id)
    if running is not None and not running.done():
        return  # already importing; the rerun would only wait for the same files

    async def _run() -> None:
        try:
            await feature_import.run_import(
                app.state.sessionmaker,
                import_id,
                work_dir=settings.import_scratch,
                location_factory=settings.open_export,
            )
        except InterpediaError as exc:  # said plainly: running elsewhere, database gone, ...
            logger.warning("import %s stopped: %s", import_id, exc)
        except Exception:  # a background task has no caller to raise to: log it
            logger.exception("import %s stopped", import_id)

    tasks[import_id] = asyncio.create_task(_run(), name=f"import-{import_id}")
