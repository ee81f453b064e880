"""The logit lens of a prompt or chat (Neuronpedia's `/api/lens/prompt`), streamed as NDJSON.

The inference service's frames (`meta`, `prompt`, one `token` per position, `done`) pass on
as they arrive, so the lens page fills its heatmap while the service computes. The first
frame is awaited before answering: a request the service refuses gets its status, not a
stream that only carries an error; a failure later in the stream ends it with an `error`
frame, as Neuronpedia's does.
"""

from collections.abc import AsyncGenerator
from typing import Any

from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from interpedia_clients.inference import models as inference
from interpedia_core.errors import InterpediaError, InvalidInput, NotFound
from interpedia_core.sse import ndjson_stream, ndjson_stream_content
from interpedia_webapi.deps import SettingsDep, UpstreamsDep
from interpedia_webapi.routes import check_texts, upstream_router
from interpedia_webapi.schemas import LensFrame, LensPromptRequest
from interpedia_webapi.upstream import upstream_errors

router = upstream_router("lens", NotFound)


LENS_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "NDJSON, one frame a line: `meta`, `prompt`, a `token` frame per "
        "position (top tokens and probabilities per layer), `done` (or `error`).",
        "content": ndjson_stream_content(LensFrame),
    }
}


def _inference_request(body: LensPromptRequest) -> inference.LensPromptRequest:
    if (body.prompt is None) == (body.chat is None):
        raise InvalidInput("give exactly one of prompt or chat")

    def steer_token(token: Any) -> inference.LensSteerToken:
        return inference.LensSteerToken(token=token.token, type=inference.LensType(token.type))

    return inference.LensPromptRequest(
        model=body.modelId,
        prompt=body.prompt,
        chat=None
        if body.chat is None
        else [inference.LensChatMessage(role=m.role, content=m.content) for m in body.chat],
        type=[inference.LensType(t) for t in body.type],
        top_n=body.topN,
        layers=body.layers,
        temperature=body.temperature,
        num_completion_tokens=body.numCompletionTokens,
        prepend_bos=body.prependBos,
        seed=body.seed,
        filter_non_word_tokens=body.filterNonWordTokens,
        steer_tokens=[steer_token(t) for t in body.steerTokens],
        steer_layers=body.steerLayers,
        steer_strength=body.steerStrength,
        steer_ablate=body.steerAblate,
        swap_token=None if body.swapToken is None else steer_token(body.swapToken),
        steer_generated_tokens=body.steerGeneratedTokens,
    )


@router.post("/lens/prompt", response_class=StreamingResponse, responses=LENS_ANSWERS)
async def lens_prompt(
    body: LensPromptRequest, settings: SettingsDep, upstreams: UpstreamsDep
) -> StreamingResponse:
    """The logit lens per layer and token position of a prompt or chat, optionally steered
    along token directions and continued; streamed as NDJSON frames."""
    check_texts(settings, [body.prompt or "", *(m.content for m in body.chat or [])])
    if body.numCompletionTokens > settings.steer_max_tokens:
        raise InvalidInput(f"numCompletionTokens may be at most {settings.steer_max_tokens}")
    client = upstreams.inference(body.modelId)
    frames = aiter(client.stream_lens_prompt(_inference_request(body)))
    async with upstream_errors(client):
        first = await anext(frames)  # refusals become statuses, not frames

    async def relay() -> AsyncGenerator[BaseModel, None]:
        try:
            yield first
            async with upstream_errors(client):
                async for frame in frames:
                    yield frame
        except InterpediaError as exc:  # the stream has started: say it in the stream
            yield inference.LensErrorMessage(error=exc.message)
        finally:
            await frames.aclose()  # type: ignore[attr-defined]

    return ndjson_stream(relay())
