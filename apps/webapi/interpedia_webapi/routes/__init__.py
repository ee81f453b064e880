"""HTTP routes: one module per resource, thin (parse, call one domain function, answer)."""

from interpedia_core.errors import InvalidInput
from interpedia_webapi.settings import WebapiSettings


def check_texts(settings: WebapiSettings, texts: str | list[str], max_texts: int = 32) -> list[str]:
    """The inputs as a list, refused when too many or too long (inference is expensive)."""
    items = [texts] if isinstance(texts, str) else list(texts)
    if not items or len(items) > max_texts:
        raise InvalidInput(f"send 1 to {max_texts} texts")
    for text in items:
        if not text.strip():
            raise InvalidInput("a text is empty")
        if len(text) > settings.max_text_chars:
            raise InvalidInput(
                f"a text has {len(text)} characters; the limit is {settings.max_text_chars}"
            )
    return items
