"""HTTP routes: one module per resource, thin (parse, call one domain function, answer)."""

from interpedia_core.errors import InvalidInput
from interpedia_webapi.settings import WebapiSettings


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
