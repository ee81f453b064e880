"""Steer endpoints' logic: resolve features/vectors to targets, generate, shape outputs.

`completion_events` runs one generation in a worker thread and yields the cumulative
response after every token (what the SSE stream sends); the non-streaming routes keep only
the last one.
"""

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import torch

from interpedia_core.errors import InvalidInput, Unprocessable
from interpedia_inference.engine import Engine
from interpedia_inference.schemas.steer import (
    ChatMessage,
    Logprob,
    SteerChatResult,
    SteerCommon,
    SteerCompletionChatResponse,
    SteerCompletionOutput,
    SteerCompletionResponse,
    SteerType,
)
from interpedia_inference.steering import (
    GenerationResult,
    SteerPlan,
    SteerTarget,
    StepEvent,
    check_strength,
    generate,
    hook_key,
)


async def resolve_targets(engine: Engine, request: SteerCommon) -> list[SteerTarget]:
    """Features (decoder rows of loaded SAEs) or raw vectors (the schema allows one kind)."""
    targets: list[SteerTarget] = []
    for feature in request.features or []:
        engine.check_model(feature.model)
        sae = await engine.sae(feature.source)
        sae.check_index(feature.index)
        hook_key(sae.steer_hook)
        vector = sae.decoder_vector(feature.index).float().cpu()
        targets.append(
            SteerTarget(sae.steer_hook, vector, request.strength_multiplier * feature.strength)
        )
    for raw in request.vectors or []:
        hook_key(raw.hook)
        vector = engine.check_vector(
            raw.steering_vector, engine.hook_width(raw.hook), "steering_vector"
        )
        targets.append(SteerTarget(raw.hook, vector, request.strength_multiplier * raw.strength))
    for target in targets:
        check_strength(target.coefficient)
        if request.normalize_steering and float(target.vector.norm()) == 0.0:
            raise Unprocessable("cannot normalize a zero steering vector")
    return targets


@dataclass
class Rows:
    types: list[SteerType]

    @property
    def steered_mask(self) -> torch.Tensor:
        return torch.tensor([t == SteerType.STEERED for t in self.types])


def dedupe_types(types: list[SteerType]) -> list[SteerType]:
    seen: list[SteerType] = []
    for t in types:
        if t not in seen:
            seen.append(t)
    return seen


async def completion_events(
    engine: Engine,
    prompt_ids: list[int],
    request: SteerCommon,
    targets: list[SteerTarget],
    types: list[SteerType],
    prefill_positions: torch.Tensor | None = None,
) -> AsyncIterator[tuple[list[list[int]], list[list[dict]]]]:
    """Yield (new tokens per row, logprobs per row) after each generated token."""
    engine.check_completion_tokens(request.n_completion_tokens)
    by_key: dict[tuple[str, int], list[SteerTarget]] = {}
    for target in targets:
        by_key.setdefault(hook_key(target.hook_name), []).append(target)
    plan = SteerPlan(
        targets=by_key,
        method=request.steer_method,
        normalize=request.normalize_steering,
        rows=Rows(types).steered_mask,
        prefill_positions=prefill_positions,
    )
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[StepEvent | None] = asyncio.Queue()
    stop = threading.Event()
    put: Callable[[StepEvent | None], None] = lambda ev: loop.call_soon_threadsafe(  # noqa: E731
        queue.put_nowait, ev
    )

    def run() -> GenerationResult:
        try:
            return generate(
                engine.model,
                engine.steering_hooks,
                prompt_ids,
                plan,
                n_new_tokens=request.n_completion_tokens,
                temperature=request.temperature,
                freq_penalty=request.freq_penalty,
                seed=request.seed,
                n_logprobs=request.n_logprobs,
                on_step=put,
                stop=stop,
            )
        finally:
            put(None)

    task = asyncio.ensure_future(asyncio.to_thread(run))
    engine.active_generations += 1
    tokens: list[list[int]] = [[] for _ in types]
    logprobs: list[list[dict]] = [[] for _ in types]
    try:
        while True:
            event = await queue.get()
            if event is None:
                break
            for row, token in enumerate(event.tokens):
                if token is not None:
                    tokens[row].append(token)
                    entry = event.logprobs[row] if event.logprobs else None
                    if entry is not None:
                        logprobs[row].append(entry)
            yield tokens, logprobs
        await task  # re-raise what the generation raised
    finally:
        stop.set()
        engine.active_generations -= 1


def completion_response(
    engine: Engine,
    prompt_ids: list[int],
    types: list[SteerType],
    tokens: list[list[int]],
    logprobs: list[list[dict]],
    n_logprobs: int,
) -> SteerCompletionResponse:
    """Neuronpedia's shape: each output is the prompt (without BOS) plus its completion."""
    body = prompt_ids[1:] if engine.is_bos(prompt_ids) else prompt_ids
    outputs = [
        SteerCompletionOutput(
            type=steer_type,
            output=engine.model.tokenizer.decode(body + tokens[row]),
            logprobs=[Logprob(**e) for e in logprobs[row]] if n_logprobs > 0 else None,
        )
        for row, steer_type in enumerate(types)
    ]
    return SteerCompletionResponse(outputs=outputs)


def chat_prompt(engine: Engine, messages: list[ChatMessage]) -> tuple[str, list[int]]:
    """The chat template applied with a generation prompt, and its token ids."""
    tokenizer = engine.model.tokenizer
    if getattr(tokenizer, "chat_template", None) is None:
        raise InvalidInput(f"model {engine.model.model_id} has no chat template")
    text = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages],
        tokenize=False,
        add_generation_prompt=True,
    )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    engine.check_length(len(ids))
    return text, ids


def chat_response(
    engine: Engine,
    messages: list[ChatMessage],
    prompt_text: str,
    prompt_ids: list[int],
    types: list[SteerType],
    tokens: list[list[int]],
    logprobs: list[list[dict]],
    n_logprobs: int,
) -> SteerCompletionChatResponse:
    decode = engine.model.tokenizer.decode
    outputs = [
        SteerChatResult(
            type=steer_type,
            raw=decode(prompt_ids + tokens[row], skip_special_tokens=False),
            chat_template=[
                *messages,
                ChatMessage(
                    role="assistant", content=decode(tokens[row], skip_special_tokens=True)
                ),
            ],
            logprobs=[Logprob(**e) for e in logprobs[row]] if n_logprobs > 0 else None,
        )
        for row, steer_type in enumerate(types)
    ]
    return SteerCompletionChatResponse(
        outputs=outputs, input=SteerChatResult(chat_template=list(messages), raw=prompt_text)
    )
