"""POST /v1/apply-chat-template."""

from fastapi import APIRouter

from interpedia_inference import chat_template
from interpedia_inference.deps import EngineDep
from interpedia_inference.schemas.chat_template import (
    ApplyChatTemplateRequest,
    ApplyChatTemplateResponse,
)

router = APIRouter(tags=["chat"])


@router.post("/apply-chat-template", response_model=ApplyChatTemplateResponse)
async def apply_chat_template(
    body: ApplyChatTemplateRequest, engine: EngineDep
) -> ApplyChatTemplateResponse:
    """The chat rendered by the model's template, with each token's message, role and section."""
    if body.model is not None:
        engine.check_model(body.model)
    return chat_template.apply_chat_template(
        engine, body.messages, body.add_generation_prompt, body.chat_template_kwargs
    )
