"""Rendering chat messages through the model's template, with each token's message and role.

A client that groups a rendered chat's tokens into message bubbles (the lens page, the steer
chat) needs to know where each message starts and which tokens are its content rather than
the template's markup; only the template knows, and it differs per model family. So the
spans are found by rendering: message i's text is what rendering the first i + 1 messages
adds to rendering the first i, and its content is the message's own text inside that.
Tokens map to characters through the tokenizer's offsets.
"""

from collections.abc import Sequence
from typing import Any

from interpedia_core.errors import InvalidInput
from interpedia_inference.engine import Engine
from interpedia_inference.schemas.chat_template import (
    ApplyChatTemplateResponse,
    TemplateMessage,
    TokenSpan,
)


def _render(
    tokenizer: Any,
    messages: Sequence[dict[str, str]],
    add_generation_prompt: bool,
    kwargs: dict[str, Any],
) -> str:
    if not messages:
        return ""
    try:
        text = tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
        )
    except Exception as exc:  # templates are Jinja: any error is the request's messages
        raise InvalidInput(f"the chat template cannot render these messages: {exc}") from None
    return str(text)


def template_messages(messages: Sequence[TemplateMessage]) -> list[dict[str, str]]:
    """Messages as the template reads them (fields, not a dump: dumps follow the wire's
    dialect)."""
    out = []
    for m in messages:
        entry = {"role": m.role, "content": m.content}
        if m.channel is not None:
            entry["channel"] = m.channel
        out.append(entry)
    return out


def apply_chat_template(
    engine: Engine,
    messages: Sequence[TemplateMessage],
    add_generation_prompt: bool,
    kwargs: dict[str, Any],
) -> ApplyChatTemplateResponse:
    tokenizer = engine.model.tokenizer
    if getattr(tokenizer, "chat_template", None) is None:
        raise InvalidInput(f"model {engine.model.model_id} has no chat template")
    plain = template_messages(messages)
    text = _render(tokenizer, plain, add_generation_prompt, kwargs)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = encoded["input_ids"]
    engine.check_length(len(ids))

    # Character spans of each message, and of its content inside it.
    bounds: list[tuple[int, int, int, int]] = []  # (start, content_start, content_end, end)
    start = 0
    for i, message in enumerate(plain):
        prefix = _render(tokenizer, plain[: i + 1], False, kwargs)
        end = len(prefix) if text.startswith(prefix) else start
        found = text.find(message["content"], start, max(end, start))
        content_start = found if found >= 0 else end
        content_end = content_start + len(message["content"]) if found >= 0 else end
        bounds.append((start, content_start, content_end, end))
        start = max(start, end)

    strings = engine.token_strings(ids)
    spans = []
    for position, (token_id, (char_start, char_end)) in enumerate(
        zip(ids, encoded["offset_mapping"], strict=True)
    ):
        middle = (char_start + char_end) / 2
        index = next((i for i, b in enumerate(bounds) if b[0] <= middle < b[3]), None)
        if index is None:
            section = "scaffold"
        else:
            _, content_start, content_end, _ = bounds[index]
            if middle < content_start:
                section = "header"
            elif middle < content_end:
                section = "content"
            else:
                section = "footer"
        message = messages[index] if index is not None else None
        spans.append(
            TokenSpan(
                position=position,
                token_id=token_id,
                token_str=strings[position],
                message_index=index,
                role=message.role if message else None,
                channel=message.channel if message else None,
                section=section,
            )
        )
    return ApplyChatTemplateResponse(prompt=text, tokens=ids, spans=spans)
