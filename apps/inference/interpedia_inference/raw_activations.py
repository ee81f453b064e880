"""The model's own internals, no SAE involved: raw hook activations and attention patterns.

Both read through the activation batcher, so they share padded forwards with every other
activation request arriving at the same time (right padding leaves each prompt's values what
they would be alone).
"""

import asyncio

import torch

from interpedia_core.errors import InvalidInput, NotFound
from interpedia_inference.engine import Engine
from interpedia_inference.schemas.activation import (
    ActivationAttentionResponse,
    ActivationRawLayer,
    ActivationRawPromptResult,
    ActivationRawResponse,
)

RESIDUAL_STREAM = "residual_stream"

# Sparsification as Neuronpedia returns attention (its HeadVis pipeline's constants), so a
# pattern shown here reads the same as one shown there.
SPARSE_TOPK_PER_ROW = 8
SPARSE_THRESHOLD = 0.005
VALUE_DECIMALS = 4


def resolve_layers(engine: Engine, layers: list[int] | None) -> list[int]:
    """Ascending, deduplicated layers; none asked: every layer. 400 for one out of range."""
    n_layers = engine.model.n_layers
    if not layers:
        return list(range(n_layers))
    bad = sorted({layer for layer in layers if not 0 <= layer < n_layers})
    if bad:
        raise InvalidInput(
            f"layers {bad} are out of range: this model has {n_layers} layers (0-{n_layers - 1})"
        )
    return sorted(set(layers))


def hook_name(engine: Engine, layer: int, hook_point: str) -> str:
    """`blocks.{layer}.{hook_point}`; 404 for a hook point the model does not have."""
    point = "hook_resid_post" if hook_point == RESIDUAL_STREAM else hook_point
    name = f"blocks.{layer}.{point}"
    if name not in engine.model.bridge.hook_dict or point.endswith("hook_pattern"):
        raise NotFound(
            f"unknown hook point {hook_point!r}: use {RESIDUAL_STREAM!r} or a per-token hook "
            "inside a block, e.g. hook_resid_pre, attn.hook_z, mlp.hook_post"
        )
    return name


async def activation_raw(
    engine: Engine,
    prompts: list[str],
    layers: list[int] | None,
    hook_point: str,
    all_tokens: bool,
) -> ActivationRawResponse:
    """Each prompt's activations at `hook_point` of each layer: the final token's vector, or
    every token's."""
    chosen = resolve_layers(engine, layers)
    names = [hook_name(engine, layer, hook_point) for layer in chosen]
    token_lists = [engine.tokenize(p) for p in prompts]  # 400 over the limit, before any work
    captured = await asyncio.gather(*(engine.activations(t, [], set(names)) for t in token_lists))
    results = []
    for tokens, result in zip(token_lists, captured, strict=True):
        positions = list(range(len(tokens))) if all_tokens else [len(tokens) - 1]
        results.append(
            ActivationRawPromptResult(
                token_strings=engine.token_strings(tokens),
                token_ids=tokens,
                activations=[
                    ActivationRawLayer(
                        layer=layer,
                        token_indices=positions,
                        values=result.hooks[name][positions].tolist(),  # [positions, d_hook]
                    )
                    for layer, name in zip(chosen, names, strict=True)
                ],
            )
        )
    return ActivationRawResponse(
        hook_point=hook_point,
        type="all_tokens" if all_tokens else "final_output_token",
        dtype=str(engine.model.dtype).removeprefix("torch."),
        device=engine.model.device,
        results=results,
    )


async def attention_pattern(
    engine: Engine, tokens: list[int], layer: int, head: int
) -> torch.Tensor:
    """[q, k] softmax attention of one head over `tokens` (each row sums to 1)."""
    model = engine.model
    if not 0 <= layer < model.n_layers:
        raise InvalidInput(f"layer {layer} is out of range: this model has {model.n_layers} layers")
    if not 0 <= head < model.n_heads:
        raise InvalidInput(f"head {head} is out of range: this model has {model.n_heads} heads")
    name = f"blocks.{layer}.attn.hook_pattern"
    result = await engine.activations(tokens, [], {name})
    return result.hooks[name][head]  # [n_heads, q, k] → [q, k]


def sparsify_attention(pattern: torch.Tensor) -> tuple[list[int], list[float], float]:
    """(flat indices q * seq + k, values, max outside the BOS row and column) of the top
    keys per query row that reach the threshold, in (q, k) order."""
    seq = pattern.shape[0]
    if seq < 2:
        return [], [], 0.0
    top_values, top_keys = torch.topk(pattern, k=min(SPARSE_TOPK_PER_ROW, seq), dim=-1)
    keep = top_values >= SPARSE_THRESHOLD  # [q, k_top]
    queries = torch.arange(seq).unsqueeze(1).expand_as(top_keys)
    flat = (queries * seq + top_keys)[keep]
    values = top_values[keep]
    order = torch.argsort(flat)
    indices = flat[order].tolist()
    rounded = [round(v, VALUE_DECIMALS) for v in values[order].tolist()]
    interior = pattern[1:, 1:]
    return indices, rounded, round(float(interior.max()), VALUE_DECIMALS)


async def activation_attention(
    engine: Engine, prompt: str, layer: int, head: int
) -> ActivationAttentionResponse:
    tokens = engine.tokenize(prompt)
    pattern = await attention_pattern(engine, tokens, layer, head)
    indices, values, max_value = sparsify_attention(pattern)
    return ActivationAttentionResponse(
        seq_len=len(tokens),
        attention_indices=indices,
        attention_values=values,
        max_activation=max_value,
        tokens=engine.token_strings(tokens),
    )
