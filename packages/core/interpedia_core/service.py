"""What every Interpedia HTTP service shares: the FastAPI shell and error mapping.

Each app's `create_app(settings)` calls `create_service_app` and adds its own
lifespan and routers, so all four services answer errors, name their
operations, check their secret and document all of that the same way.
"""

import hmac
import logging
import re
from collections.abc import Callable, Collection
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import Match

from interpedia_core.dialect import DialectMiddleware, WireDialect
from interpedia_core.errors import InterpediaError, InvalidInput, Unauthorized
from interpedia_core.sse import hoist_event_schemas
from interpedia_core.wire import ErrorResponse, ValidationErrorResponse

logger = logging.getLogger(__name__)
SECRET_HEADER = "x-secret-key"
# Paths anyone may read even when the service has a secret: health checks and the spec.
OPEN_PATHS = ("/health", "/openapi.json", "/docs")


def operation_id(route: APIRoute) -> str:
    """Readable generated-client method names: `activation_all` for POST /v1/activation/all."""
    return route.name


def error_responses(*errors: type[InterpediaError]) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: each error it may answer with, by status, with its docstring.

    Routes list what they (and their dependencies) raise, so the spec names every status
    a caller can meet and the body (`{"detail": ...}`) that comes with it.
    """
    by_status: dict[int, list[str]] = {}
    for error in errors:
        text = (error.__doc__ or error.__name__).strip()
        texts = by_status.setdefault(error.status_code, [])
        if text not in texts:
            texts.append(text)
    return {
        status: {"model": ErrorResponse, "description": " / ".join(texts)}
        for status, texts in sorted(by_status.items())
    }


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors to their status; never leak an unexpected error's text."""

    @app.exception_handler(InterpediaError)
    async def _domain_error(request: Request, exc: InterpediaError) -> JSONResponse:
        if exc.status_code >= 500:
            logger.error("%s %s failed: %s", request.method, request.url.path, exc)
        content: dict[str, Any] = {"detail": exc.message}
        if exc.status_code == 422:  # every 422 has the same shape, field errors or not
            content["errors"] = []
        return JSONResponse(status_code=exc.status_code, content=content)

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

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Any:
        if exc.status_code == 405:
            # Starlette names only the first route that matched the path; list every method.
            exc.headers = {"Allow": ", ".join(_allowed_methods(app, request))}
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content={"detail": "internal server error"})


HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route takes at this path (asked through `matches`, which also
    sees into included routers)."""
    return [
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in app.router.routes
        )
    ]


def _jsonable(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": e.get("type")}
        for e in errors
    ]


class WrongSecret(Unauthorized):
    """Missing or wrong X-SECRET-KEY header: this service requires the shared secret."""


# A JSON `\u0000` escape (not an escaped backslash followed by "u0000").
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
NUL_REFUSED = "text may not contain NUL characters (\\u0000)"


class RefuseNul:
    """ASGI middleware: refuse NUL characters in the path, query or JSON body with a 422.

    PostgreSQL cannot store them in text, and file paths cannot hold them: let through,
    one fails deep inside a query or an `open` as a 500. No field of any service has a
    use for them, so they are refused here, once, before any route sees the request.
    Plain ASGI rather than `@app.middleware`: the body read here is handed on unchanged,
    and streaming answers (and their disconnect checks) are left alone. Bodies of
    `streamed_paths` are not read here (that would hold a large upload whole): their
    routes parse as the body arrives and refuse NUL themselves.
    """

    def __init__(self, app: Any, streamed_paths: Collection[str] = ()) -> None:
        self.app = app
        self.streamed_paths = frozenset(streamed_paths)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            return await self._refuse("path", scope, receive, send)
        headers = dict(scope.get("headers", ()))
        if b"json" not in headers.get(b"content-type", b"") or scope["path"] in self.streamed_paths:
            return await self.app(scope, receive, send)
        messages, body = [], b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        if _JSON_NUL.search(body):
            return await self._refuse("body", scope, receive, send)

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(where: str, scope: Any, receive: Any, send: Any) -> None:
        error = {"loc": [where], "msg": NUL_REFUSED, "type": "nul_character"}
        answer = JSONResponse(
            status_code=422, content={"detail": f"{where}: {NUL_REFUSED}", "errors": [error]}
        )
        await answer(scope, receive, send)


def install_secret_check(app: FastAPI, secret: str | None) -> None:
    """When a secret is configured, every request but /health (and the spec) must carry it."""
    if not secret:
        return

    @app.middleware("http")
    async def _check_secret(request: Request, call_next: Callable[..., Any]) -> Any:
        if request.url.path in OPEN_PATHS:
            return await call_next(request)
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            refused = WrongSecret()
            return JSONResponse(
                status_code=refused.status_code, content={"detail": refused.message}
            )
        return await call_next(request)


def _error_answer(description: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{ErrorResponse.__name__}"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _document_errors(schema: dict[str, Any], secret_checked: bool) -> None:
    """Make the spec say what the error handlers send.

    FastAPI documents its own 422 body (`detail` a list); `install_error_handlers` sends
    `detail` as a string plus `errors`. And a service with a secret may answer 401 on
    every path but the open ones.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorResponse, ValidationErrorResponse):
        definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(definition.pop("$defs", {}))
        components[model.__name__] = definition
    validation = {"$ref": f"#/components/schemas/{ValidationErrorResponse.__name__}"}
    unauthorized = error_responses(WrongSecret)[401]
    unreadable = error_responses(InvalidInput)[400]  # FastAPI's answer to a body that is not JSON
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"]["content"] = {"application/json": {"schema": validation}}
            if "requestBody" in operation and "400" not in responses:
                responses["400"] = _error_answer(unreadable["description"])
            if secret_checked and path not in OPEN_PATHS:
                responses.setdefault("401", _error_answer(unauthorized["description"]))
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    hoist_event_schemas(schema)


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
    internal: bool = True,
    wire_dialect: WireDialect | None = None,
    streamed_paths: Collection[str] = (),
) -> FastAPI:
    """A FastAPI app with Interpedia's error handlers, operation ids, secret check and /health.

    The app answers /health with 503 until the service sets `app.state.ready = True`
    (after its lifespan has loaded what it needs). An `internal` service (all but the
    public web API) checks `secret` when one is set, and its spec documents the 401. With
    `wire_dialect` it reads snake_case and camelCase bodies and answers in the request's
    dialect, that one when the request doesn't say (`interpedia_core.dialect`; its models
    must derive from `WireSchema`). Routes at `streamed_paths` read their JSON bodies as
    they arrive and check them for NUL themselves (see `RefuseNul`).
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
    if wire_dialect is not None:  # innermost: it reads only bodies the checks let through
        app.add_middleware(DialectMiddleware, default=wire_dialect)
    app.add_middleware(RefuseNul, streamed_paths=streamed_paths)
    if internal:  # added last, so it runs first: a stranger learns nothing about the input
        install_secret_check(app, secret)
    app.include_router(health_router)
    render = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _document_errors(render(), secret_checked=internal)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
    return app
