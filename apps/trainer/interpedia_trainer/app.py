"""The trainer service: enqueue training, dashboard and concept jobs, report runs and jobs.

The work itself runs on `interpedia worker` processes (see jobs.py); this
process only validates requests, records training runs and defers jobs, so it
starts in a second and needs no model in memory.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from interpedia_core.service import create_service_app
from interpedia_db.connect import open_database
from interpedia_jobs.queue import create_job_app
from interpedia_trainer.routes import concepts, jobs, runs, training
from interpedia_trainer.settings import TrainerSettings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: TrainerSettings = app.state.settings
    async with open_database(settings) as database:
        app.state.sessionmaker = database.sessionmaker
        app.state.job_app = create_job_app(database.url, load_tasks=False)
        async with app.state.job_app.open_async():
            app.state.ready = True
            yield


def create_app(settings: TrainerSettings | None = None) -> FastAPI:
    settings = settings or TrainerSettings()
    app = create_service_app(
        title="Interpedia trainer",
        description="Train SAEs, compute feature dashboards and score concepts, as jobs on "
        "the shared queue; list and compare training runs.",
        lifespan=lifespan,
        secret=settings.secret,
    )
    app.state.settings = settings
    app.include_router(training.router, prefix="/v1")
    app.include_router(runs.router, prefix="/v1")
    app.include_router(concepts.router, prefix="/v1")
    app.include_router(jobs.router, prefix="/v1")
    return app
