"""The web API and pages: `create_app` wires settings, database, clients and routers."""

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from interpedia_core.errors import InterpediaError
from interpedia_core.service import create_service_app
from interpedia_db.connect import open_database
from interpedia_webapi.rate_limit import TokenBuckets
from interpedia_webapi.routes import (
    activations,
    admin_export,
    admin_import,
    bookmarks,
    comments,
    explanation_records,
    explanations,
    explore,
    features,
    graph_pages,
    graphs,
    inference_search,
    lens,
    lists,
    models,
    my_stuff,
    pages,
    similar,
    steer,
    steer_runs,
    uploads,
    users,
    vectors,
)
from interpedia_webapi.settings import WebapiSettings
from interpedia_webapi.upstream import Upstreams

logger = logging.getLogger(__name__)
HERE = Path(__file__).parent


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the database (unless a test handed in a sessionmaker) and, at the end, close
    the service clients."""
    from interpedia_webapi import accounts

    settings: WebapiSettings = app.state.settings
    async with AsyncExitStack() as stack:
        if app.state.sessionmaker is None:
            database = await stack.enter_async_context(open_database(settings))
            app.state.database_url = database.url
            app.state.sessionmaker = database.sessionmaker
        if settings.admin_bootstrap_key:
            async with app.state.sessionmaker.begin() as session:
                await accounts.ensure_bootstrap_admin(session, settings.admin_bootstrap_key)
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            for task in list(app.state.import_tasks.values()):
                task.cancel()
            await app.state.upstreams.aclose()


def create_app(settings: WebapiSettings | None = None) -> FastAPI:
    """The app; cheap to build (the database is opened in the lifespan)."""
    settings = settings or WebapiSettings()
    app = create_service_app(
        title="Interpedia web API",
        description="Browse, search, test and steer sparse-autoencoder features. "
        "Reads are public; writes need an `x-api-key`; admin routes need an admin key.",
        lifespan=lifespan,
        internal=False,
        streamed_paths=uploads.STREAMED_PATHS,
    )
    app.state.settings = settings
    app.state.ready = False
    app.state.sessionmaker = None
    app.state.import_tasks = {}
    app.state.rate_limits = TokenBuckets(settings.rate_limit_per_minute, settings.rate_limit_burst)
    app.state.upstreams = Upstreams(
        settings.inference_urls,
        settings.inference_url,
        settings.inference_secret,
        settings.autointerp_url,
        settings.autointerp_secret,
        settings.graph_url,
        settings.graph_secret,
    )
    # Signs graph upload URLs; one per process unless configured (see the setting).
    app.state.signing_key = (settings.signing_key or secrets.token_hex(32)).encode()
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (
        models,
        features,
        activations,
        explanations,
        explanation_records,
        explore,
        inference_search,
        steer,
        steer_runs,
        similar,
        lens,
        lists,
        comments,
        bookmarks,
        my_stuff,
        vectors,
        uploads,
        users,
        admin_import,
        admin_export,
        graphs,
    ):
        app.include_router(module.router, prefix="/api")
    app.include_router(graph_pages.router)  # before pages: /{model}/graph is not a source
    app.include_router(pages.router)
    _render_page_errors(app)
    return app


def _render_page_errors(app: FastAPI) -> None:
    """Pages answer domain errors with an HTML page; the API keeps `{"detail": ...}`."""
    json_handler = app.exception_handlers[InterpediaError]

    async def handler(request: Request, exc: Exception) -> Response:
        wants_page = not request.url.path.startswith(("/api/", "/static/")) and (
            "text/html" in request.headers.get("accept", "")
        )
        if not wants_page or not isinstance(exc, InterpediaError):
            return await json_handler(request, exc)
        return pages.TEMPLATES.TemplateResponse(
            request,
            "error.html",
            {"status": exc.status_code, "message": exc.message},
            status_code=exc.status_code,
        )

    app.add_exception_handler(InterpediaError, handler)
