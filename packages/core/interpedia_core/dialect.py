"""Neuronpedia's two wire dialects: snake_case and camelCase field names.

Neuronpedia's servers since their August 2026 rewrite read both dialects and answer in
camelCase, while its published Python clients (`neuronpedia-inference-client`,
`neuronpedia-autointerp-client`) send and expect snake_case. So that both generations of
clients work unchanged, a service built on these pieces reads either dialect and answers in
the one the request used:

- `WireSchema` (the base of a service's wire models) accepts every field under its name and
  its camelCase form, and writes camelCase field names while `camel_case_wire` is set. The
  renaming is per model, so only declared field names change: dict keys that are data
  (feature indices, tokens, hook names) are left alone.
- `DialectMiddleware` decides each request's dialect (header, else the keys of its JSON
  body, else the service's default) and sets `camel_case_wire` for everything that answers
  it, streams included.

The published spec (and so our own generated clients) keeps one dialect, snake_case: the
JSON schema of a `WireSchema` lists field names, never their camelCase forms.
"""

import contextvars
import json
import re
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    model_serializer,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core.core_schema import CoreSchema, SerializerFunctionWrapHandler
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# True while answering a request written in camelCase.
camel_case_wire: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "camel_case_wire", default=False
)

WireDialect = Literal["snake", "camel"]
DIALECT_HEADER = b"x-wire-dialect"

_CAMEL_KEY = re.compile(r"[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+")
_SNAKE_KEY = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")


def _both_names(field_name: str) -> AliasChoices:
    # The field's own name first: that is the one the JSON schema shows.
    return AliasChoices(field_name, to_camel(field_name))


def wire_dialect_field() -> Any:
    """The `wire_dialect` setting of a service that reads both dialects."""
    return Field(
        default="snake",
        description=(
            "Field names of answers to requests that don't show their dialect (one-word keys, "
            "no body, no X-Wire-Dialect header): snake (Neuronpedia's Python clients) or camel "
            "(its current webapp)."
        ),
    )


class WireSchema(BaseModel):
    """Base of wire models that read both dialects and answer in the request's."""

    # Unknown fields are ignored rather than refused: Neuronpedia's clients may send more.
    # populate_by_name keeps explicit aliases (activeFeatures) and field names both valid.
    model_config = ConfigDict(
        extra="ignore",
        populate_by_name=True,
        alias_generator=AliasGenerator(validation_alias=_both_names),
        protected_namespaces=(),
    )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The dialect serializer below would make pydantic describe the output as "any":
        # describe the fields instead, by their own names (the snake_case dialect).
        if core_schema.get("type") == "model" and "serialization" in core_schema:
            core_schema = {k: v for k, v in core_schema.items() if k != "serialization"}  # type: ignore[assignment]
        return handler(core_schema)

    @model_serializer(mode="wrap")
    def _in_request_dialect(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if not camel_case_wire.get() or not isinstance(data, dict):
            return data
        fields = type(self).model_fields
        # A key equal to a field name is renamed; explicit aliases are already final.
        return {(to_camel(k) if k in fields else k): v for k, v in data.items()}


class SnakeCaseFrame(WireSchema):
    """A payload whose snake_case names are a public contract in both dialects (Neuronpedia
    keeps its lens frames snake_case because its webapp forwards them verbatim)."""

    @model_serializer(mode="wrap")
    def _in_request_dialect(self, handler: SerializerFunctionWrapHandler) -> Any:
        return handler(self)


def body_dialect_is_camel(body: Any) -> bool | None:
    """True for a camelCase body, False for snake_case, None when its keys don't say
    (every key one word). A body mixing both counts as camelCase: only a newer client
    writes camelCase keys."""
    snake = False
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str):
                    if _CAMEL_KEY.fullmatch(key):
                        return True
                    snake = snake or bool(_SNAKE_KEY.fullmatch(key))
                if isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(item for item in node if isinstance(item, dict | list))
    return False if snake else None


class DialectMiddleware:
    """Sets `camel_case_wire` for each request (see the module docstring), by, in order:

    1. the `X-Wire-Dialect: snake|camel` header, which a client sure of its dialect sends
       (our own clients send `snake`);
    2. the keys of a JSON body, when they tell;
    3. `default` otherwise: a body whose keys are all one word, or no body (GET). Neither of
       Neuronpedia's clients says which it is then, so the operator picks: `snake` (the
       published Python clients) or `camel` (Neuronpedia's current webapp).

    The body is read here once and replayed to the app.
    """

    def __init__(self, app: ASGIApp, default: WireDialect = "snake") -> None:
        self.app = app
        self.default_camel = default == "camel"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        camel = _header_dialect(scope)
        if camel is None and scope["method"] in ("POST", "PUT", "PATCH"):
            body, receive = await _read_body(receive)
            camel = _json_dialect(body)
        token = camel_case_wire.set(self.default_camel if camel is None else camel)
        try:
            await self.app(scope, receive, send)
        finally:
            camel_case_wire.reset(token)


def _header_dialect(scope: Scope) -> bool | None:
    for name, value in scope["headers"]:
        if name == DIALECT_HEADER:
            wanted = value.decode("latin-1").strip().lower()
            if wanted in ("snake", "camel"):
                return wanted == "camel"
    return None


def _json_dialect(body: bytes) -> bool | None:
    if body.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        return body_dialect_is_camel(json.loads(body))
    except ValueError:
        return None  # FastAPI answers the malformed body itself


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body, and a receive that replays it to the app."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"", _replay([message], receive)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    return body, _replay([{"type": "http.request", "body": body}], receive)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that hands out `messages` first, then defers to the real one."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
