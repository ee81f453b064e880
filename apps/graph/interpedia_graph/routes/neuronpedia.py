"""Neuronpedia's graph-server routes, same paths and fields.

`/generate-graph` answers when the graph is made, as Neuronpedia's does, but the work runs
as a graph job like any other (so it shows progress, can be cancelled and is retried if
its worker dies) and the graph is also stored under its slug. Neuronpedia's server says
it is busy while it works on a graph; this one refuses (409) while any graph job waits or
runs, so a caller waiting on this route is never stuck behind a queue.
"""

import gzip

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from interpedia_core.errors import Conflict, InvalidInput, UpstreamError
from interpedia_db import graph_store
from interpedia_graph import generation, prompts, steering
from interpedia_graph.deps import (
    JobAppDep,
    RunnerDep,
    SessionDep,
    SettingsDep,
    TokenizerDep,
)
from interpedia_graph.schemas.neuronpedia import (
    CheckBusyResponse,
    ForwardPassRequest,
    ForwardPassResponse,
    GraphChatMessage,
    GraphGenerationRequest,
    GraphGenerationResponse,
    LogitsByToken,
    ParseChatPromptRequest,
    ParseChatPromptResponse,
    SalientLogit,
    SteerRequest,
    SteerResponse,
    TopLogit,
)
from interpedia_graph.transcoder_sets import find_transcoder_set

router = APIRouter(tags=["neuronpedia"])


def _messages(body: ForwardPassRequest | SteerRequest | GraphGenerationRequest) -> list | None:
    return [m.model_dump() for m in body.messages] if body.messages else None


@router.get("/check-busy")
async def check_busy(session: SessionDep, runner: RunnerDep) -> CheckBusyResponse:
    """Whether a graph is waiting or being made, or the model is running a request."""
    return CheckBusyResponse(busy=runner.busy or bool(await generation.active_jobs(session)))


@router.post("/parse-chat-prompt")
async def parse_chat_prompt(
    body: ParseChatPromptRequest, tokenizer: TokenizerDep
) -> ParseChatPromptResponse:
    """The chat turns a rendered prompt holds (None for a plain prompt); tokenizer only."""
    turns = prompts.parse_chat(tokenizer, body.prompt)
    return ParseChatPromptResponse(
        messages=[GraphChatMessage(**t) for t in turns] if turns is not None else None,
        is_chat=turns is not None,
        prompt=body.prompt,
        unsteerable_positions=prompts.UNSTEERABLE_POSITIONS,
    )


@router.post("/forward-pass")
async def forward_pass(
    body: ForwardPassRequest,
    session: SessionDep,
    settings: SettingsDep,
    tokenizer: TokenizerDep,
    runner: RunnerDep,
) -> ForwardPassResponse:
    """The prompt's tokens and the next-token logits a graph of it would target."""
    text = prompts.resolve_prompt(tokenizer, body.prompt, _messages(body))
    ids = prompts.checked_prompt_ids(tokenizer, text, settings.max_prompt_tokens)
    record = await find_transcoder_set(session, settings.model_id, None, settings.transcoder_set)
    result = await runner.run(
        settings.model_id,
        record.folder,
        steering.salient_logits,
        ids,
        body.max_n_logits,
        body.desired_logit_prob,
    )
    return ForwardPassResponse(
        prompt=text,
        input_tokens=result.input_tokens,
        salient_logits=[
            SalientLogit(token=t, token_id=i, probability=p)
            for t, i, p in zip(result.tokens, result.token_ids, result.probabilities, strict=True)
        ],
        total_salient_tokens=len(result.tokens),
        cumulative_probability=sum(result.probabilities),
    )


def _by_token(generation: steering.Generation) -> list[LogitsByToken]:
    return [
        LogitsByToken(token=token, top_logits=[TopLogit(token=t, prob=p) for t, p in top])
        for token, top in zip(generation.tokens, generation.top_logits, strict=True)
    ]


@router.post("/steer")
async def steer(
    body: SteerRequest,
    session: SessionDep,
    settings: SettingsDep,
    tokenizer: TokenizerDep,
    runner: RunnerDep,
) -> SteerResponse:
    """Generate with and without the feature interventions, with top logits per token."""
    generation.check_model(settings, body.model_id)
    if body.n_tokens > settings.steer_max_tokens:
        raise InvalidInput(f"n_tokens may be at most {settings.steer_max_tokens}")
    text = prompts.resolve_prompt(tokenizer, body.prompt, _messages(body))
    ids = prompts.checked_prompt_ids(tokenizer, text, settings.max_prompt_tokens)
    record = await find_transcoder_set(
        session, settings.model_id, body.transcoder_set, settings.transcoder_set
    )
    edits = [steering.FeatureEdit(**f.model_dump()) for f in body.features]
    steering.check_edits(edits, len(ids), record.n_layers, record.d_transcoder)
    options = {
        "n_tokens": body.n_tokens,
        "top_k": body.top_k,
        "temperature": body.temperature,
        "freq_penalty": body.freq_penalty,
        "seed": body.seed,
        "freeze_attention": body.freeze_attention,
    }
    default = await runner.run(
        settings.model_id, record.folder, steering.generate, ids, [], **options
    )
    steered = await runner.run(
        settings.model_id, record.folder, steering.generate, ids, edits, **options
    )
    return SteerResponse(
        default_generation=default.text,
        steered_generation=steered.text,
        default_logits_by_token=_by_token(default),
        steered_logits_by_token=_by_token(steered),
    )


@router.post(
    "/generate-graph",
    responses={
        200: {
            "model": GraphGenerationResponse,
            "description": "With `signed_url`: the upload's receipt. Without: the graph JSON "
            "in Neuronpedia's format.",
        }
    },
)
async def generate_graph(
    body: GraphGenerationRequest,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    tokenizer: TokenizerDep,
    job_app: JobAppDep,
) -> Response:
    """Make a graph and answer with it (or PUT it to `signed_url`); refused while busy."""
    if await generation.active_jobs(session):
        raise Conflict("the graph service is busy with another graph; try again later")
    graph_request = await generation.prepare(
        session,
        settings,
        tokenizer,
        model_id=body.model_id,
        transcoder_set=None,
        prompt=body.prompt,
        messages=_messages(body),
        slug=body.slug_identifier,
        options=body.attribution_options(),
        creator_name=body.user_id,
    )
    job_id = await generation.enqueue(job_app, session, settings, graph_request)
    await session.commit()
    graph = await generation.wait_for_graph(
        request.app.state.sessionmaker, job_id, settings.generate_timeout
    )
    async with request.app.state.sessionmaker() as fresh:
        data = await graph_store.graph_data(fresh, graph.model_id, graph.slug)
    if body.signed_url is None:
        return Response(data, media_type="application/json", headers={"Content-Encoding": "gzip"})
    return JSONResponse(
        (await _upload(body.signed_url, data, body.compress)).model_dump(exclude_none=True)
    )


async def _upload(url: str, data_gzip: bytes, compress: bool) -> GraphGenerationResponse:
    """PUT the graph JSON to a signed URL, as Neuronpedia's server does."""
    headers = {"Content-Type": "application/json"}
    if compress:
        headers["Content-Encoding"] = "gzip"
        content = data_gzip
    else:
        content = gzip.decompress(data_gzip)
    try:
        async with httpx.AsyncClient(timeout=120) as client:
            answer = await client.put(url, content=content, headers=headers)
    except httpx.HTTPError as exc:
        raise UpstreamError(f"uploading the graph to the signed URL failed: {exc}") from None
    if answer.status_code != 200:
        return GraphGenerationResponse(error="Failed to upload file")
    return GraphGenerationResponse(success=f"Graph uploaded successfully to url: {url}")
