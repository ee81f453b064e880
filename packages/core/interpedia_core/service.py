"""What every Interpedia HTTP service shares: the FastAPI shell and error mapping.

Each app's `create_app(settings)` calls `create_service_app` and adds its own
lifespan and routers, so all four services answer errors, name their
operations and check their secret the same way.
"""

import hmac
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from interpedia_core.errors import InterpediaError
from interpedia_core.wire import DialectMiddleware, WireDialect

logger = logging.getLogger(__name__)


def operation_id(route: APIRoute) -> str:
    """Readable generated-client method names: `activation_all` for POST /v1/activation/all."""
    return route.name


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors to their status; never leak an unexpected error's text."""

    @app.exception_handler(InterpediaError)
    async def _domain_error(request: Request, exc: InterpediaError) -> JSONResponse:
        if exc.status_code >= 500:
            logger.error("%s %s failed: %s", request.method, request.url.path, exc)
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.message})

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body')}: {e.get('msg')}"
            for e in errors
        )
        return JSONResponse(
            status_code=422,
            content={"detail": detail or "invalid request", "errors": _jsonable(errors)},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content={"detail": "internal server error"})


def _jsonable(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": e.get("type")}
        for e in errors
    ]


def install_secret_check(app: FastAPI, secret: str | None, header: str = "x-secret-key") -> None:
    """When a secret is configured, every request but /health must carry it."""
    if not secret:
        return

    @app.middleware("http")
    async def _check_secret(request: Request, call_next: Callable[..., Any]) -> Any:
        if request.url.path == "/health" or request.url.path in ("/openapi.json", "/docs"):
            return await call_next(request)
        given = request.headers.get(header, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return JSONResponse(
                status_code=401, content={"detail": f"missing or wrong {header.upper()} header"}
            )
        return await call_next(request)


class HealthResponse(BaseModel):
    status: Literal["ok", "loading"]


health_router = APIRouter()


@health_router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "Still loading"}},
)
async def health(request: Request) -> JSONResponse:
    """200 once the service is ready (`app.state.ready`), 503 while it loads."""
    ready = bool(getattr(request.app.state, "ready", False))
    return JSONResponse({"status": "ok" if ready else "loading"}, status_code=200 if ready else 503)


def create_service_app(
    *,
    title: str,
    description: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    secret: str | None = None,
    wire_dialect: WireDialect | None = None,
) -> FastAPI:
    """A FastAPI app with Interpedia's error handlers, operation ids, secret check and /health.

    The app answers /health with 503 until the service sets `app.state.ready = True`
    (after its lifespan has loaded what it needs). With `wire_dialect` it reads
    snake_case and camelCase bodies and answers in the request's dialect, that one when the
    request doesn't say (`interpedia_core.wire`; its models must derive from `WireSchema`).
    """
    app = FastAPI(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.ready = False
    install_error_handlers(app)
    install_secret_check(app, secret)
    if wire_dialect is not None:
        app.add_middleware(DialectMiddleware, default=wire_dialect)
    app.include_router(health_router)
    return app
