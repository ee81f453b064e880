"""POST /v1/lens/prompt: the logit lens, streamed as NDJSON frames like Neuronpedia's."""

import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from interpedia_core.errors import InterpediaError
from interpedia_core.sse import NDJSON, ndjson_stream_content
from interpedia_inference import lens
from interpedia_inference.deps import EngineDep
from interpedia_inference.schemas.lens import (
    LensDoneMessage,
    LensErrorMessage,
    LensMetaMessage,
    LensPromptRequest,
    LensPromptResponse,
    LensPromptTokensMessage,
    LensTokenMessage,
)

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/lens", tags=["lens"])

_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "With `stream: true` (the default) NDJSON: one frame a line, `meta`, `prompt`, a "
            "`token` frame per position (LensTokenMessage) and `done` (or `error`); with "
            "`stream: false` one LensPromptResponse."
        ),
        "content": ndjson_stream_content(
            LensMetaMessage,
            LensPromptTokensMessage,
            LensTokenMessage,
            LensDoneMessage,
            LensErrorMessage,
        ),
    }
}


@router.post("/prompt", response_model=LensPromptResponse, responses=_DOC)
async def lens_prompt(body: LensPromptRequest, engine: EngineDep) -> Any:
    """The logit lens per layer and position, as NDJSON frames or (`stream: false`) one object.

    Over a prompt, a chat or token ids, optionally continuing it, with steering, ablation or
    a swap along token directions."""
    engine.check_model(body.model)
    source = lens.lens_input(engine, body)
    frames = lens.lens_frames(engine, body, source)
    first = await anext(frames)  # the checks run before it: bad input is still a 4xx
    if not body.stream:
        tokens: list[LensTokenMessage] = []
        done: LensDoneMessage | None = None
        async for frame in frames:
            if isinstance(frame, LensTokenMessage):
                tokens.append(frame)
            elif isinstance(frame, LensDoneMessage):
                done = frame
        assert isinstance(first, LensMetaMessage) and done is not None
        return LensPromptResponse(meta=first, tokens=tokens, done=done)

    async def lines() -> AsyncIterator[str]:
        try:
            yield first.model_dump_json() + "\n"
            async for frame in frames:
                yield frame.model_dump_json() + "\n"
        except InterpediaError as exc:  # the stream has started: say why in-band
            yield LensErrorMessage(error=exc.message).model_dump_json() + "\n"
        except Exception as exc:  # the stream has started: report in-band, as Neuronpedia does
            yield (
                LensErrorMessage(error=f"lens failed: {type(exc).__name__}").model_dump_json()
                + "\n"
            )
            raise
        finally:
            await frames.aclose()

    return StreamingResponse(lines(), media_type=NDJSON, headers={"X-Accel-Buffering": "no"})
