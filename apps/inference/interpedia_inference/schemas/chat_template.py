"""Wire models of POST /v1/apply-chat-template."""

from typing import Any

from pydantic import Field

from interpedia_inference.schemas.common import BaseSchema


class TemplateMessage(BaseSchema):
    """One message to render through the model's chat template."""

    role: str = Field(min_length=1)
    content: str
    channel: str | None = Field(default=None, description="Harmony-style channel, echoed back")


class ApplyChatTemplateRequest(BaseSchema):
    messages: list[TemplateMessage] = Field(min_length=1)
    model: str | None = Field(default=None, description="Model id; omitted: the served one")
    add_generation_prompt: bool = True
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Passed to the template (e.g. enable_thinking)"
    )


class TokenSpan(BaseSchema):
    """One rendered token and the message it belongs to."""

    position: int
    token_id: int
    token_str: str
    message_index: int | None = Field(description="None for template scaffolding")
    role: str | None
    channel: str | None
    section: str = Field(
        description="header (role markup before the content), content, footer (after it), "
        "or scaffold (outside every message: the generation prompt)"
    )


class ApplyChatTemplateResponse(BaseSchema):
    prompt: str
    tokens: list[int]
    spans: list[TokenSpan]
