"""HTTP routes: one module per resource, thin (parse, call one domain function, answer)."""

from fastapi import APIRouter

from interpedia_core.errors import InterpediaError, InvalidInput, UpstreamError
from interpedia_core.service import error_responses
from interpedia_webapi.deps import RATE_ERRORS, RateLimitDep
from interpedia_webapi.settings import WebapiSettings


def upstream_router(tag: str, *errors: type[InterpediaError]) -> APIRouter:
    """A router of rate-limited routes that ask inference or autointerp: besides `errors`,
    they answer what the service refused (400) or that it failed (502)."""
    return APIRouter(
        tags=[tag],
        dependencies=[RateLimitDep],
        responses=RATE_ERRORS | error_responses(InvalidInput, UpstreamError, *errors),
    )


def check_texts(settings: WebapiSettings, texts: str | list[str]) -> list[str]:
    """The inputs as a list; 400 when one is longer than this server's `max_text_chars`
    (the schema allows up to `MAX_TEXT_CHARS`; inference is expensive)."""
    items = [texts] if isinstance(texts, str) else list(texts)
    for text in items:
        if len(text) > settings.max_text_chars:
            raise InvalidInput(
                f"a text has {len(text)} characters; the limit is {settings.max_text_chars}"
            )
    return items
