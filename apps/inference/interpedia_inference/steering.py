"""Steered generation: STEERED and DEFAULT as one batch of two sequences.

Neuronpedia generates STEERED, then DEFAULT, one after the other. Here both rows share one
forward per token (on CPU a batch of two costs about what one does), each row samples with
its own generator seeded identically, so the DEFAULT row is the completion an unsteered
run with that seed gives.

Steering runs on the plain Hugging Face copy of the model (`LoadedModel.hf_model`) through
hooks installed once per module. The hooks read the current request's plan from a
thread-local, so concurrent generations in different worker threads never see each other's
steering and no lock is needed.

Math (as Neuronpedia): coefficient c = strength_multiplier × strength, direction v (divided
by ‖v‖ when normalize_steering).
- SIMPLE_ADDITIVE: act ← act + c·v at every position.
- ORTHOGONAL_DECOMP: with P = v vᵀ / ‖v‖², act ← (I − P)·act + c·P·act.
- PROJECTION_CAP: the projection on v̂ = v / ‖v‖ is capped at c, the rest left alone:
  act ← act − v̂·max(0, act·v̂ − c) (Neuronpedia's cap with max = c, no min).
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from interpedia_core.errors import InvalidInput, Unprocessable
from interpedia_inference.schemas.steer import SteerMethod
from interpedia_runtime.models import LoadedModel, layer_of_hook

logger = logging.getLogger(__name__)

HOOK_KINDS = ("hook_resid_pre", "hook_resid_post", "mlp.hook_post", "mlp.hook_out", "attn.hook_z")


@dataclass
class SteerTarget:
    """One steering direction applied at one hook."""

    hook_name: str
    vector: torch.Tensor  # [d_hook]
    coefficient: float


def hook_key(hook_name: str) -> tuple[str, int]:
    """`blocks.6.hook_resid_post` → ("hook_resid_post", 6); InvalidInput if not steerable."""
    layer = layer_of_hook(hook_name)
    kind = hook_name.split(".", 2)[2] if layer is not None else ""
    if layer is None or kind not in HOOK_KINDS:
        raise InvalidInput(
            f"cannot steer at hook {hook_name!r}; steerable hooks are "
            "blocks.L.hook_resid_pre|hook_resid_post|mlp.hook_post|mlp.hook_out|attn.hook_z"
        )
    return kind, layer


def apply_steering(
    acts: torch.Tensor,  # [batch, seq, d]
    targets: list[SteerTarget],
    method: SteerMethod,
    normalize: bool,
    rows: torch.Tensor,  # [batch] bool: rows to steer
    positions: torch.Tensor | None = None,  # [seq] bool: positions to steer (None: all)
) -> torch.Tensor:
    """Steered copy of `acts` (only `rows` × `positions` change)."""
    out = acts.clone()
    mask = rows.view(-1, 1, 1).to(acts.device)
    if positions is not None:
        mask = mask & positions.view(1, -1, 1).to(acts.device)
    for target in targets:
        v = target.vector.to(device=acts.device, dtype=acts.dtype)
        if normalize:
            v = v / v.norm()
        c = target.coefficient
        if method == SteerMethod.SIMPLE_ADDITIVE:
            steered = out + c * v
        elif method == SteerMethod.PROJECTION_CAP:
            unit = v / v.norm()
            excess = ((out @ unit) - c).clamp(min=0).unsqueeze(-1)  # [batch, seq, 1]
            steered = out - excess * unit
        else:
            parallel = (out @ v).unsqueeze(-1) * v / (v @ v)  # P·act, [batch, seq, d]
            steered = out - parallel + c * parallel
        out = torch.where(mask, steered, out)
    return out


@dataclass
class SteerPlan:
    """What the installed hooks do during one generation (one thread)."""

    targets: dict[tuple[str, int], list[SteerTarget]]
    method: SteerMethod
    normalize: bool
    rows: torch.Tensor  # [batch] bool
    prefill_positions: torch.Tensor | None = None  # [prompt_len] bool
    in_prefill: bool = True

    def apply(self, key: tuple[str, int], acts: torch.Tensor) -> torch.Tensor | None:
        targets = self.targets.get(key)
        if not targets:
            return None
        positions = self.prefill_positions if self.in_prefill else None
        return apply_steering(acts, targets, self.method, self.normalize, self.rows, positions)


class SteeringHooks:
    """Dispatch hooks installed once on the plain HF model; each reads a thread-local plan."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self._local = threading.local()
        self._handles: list[Any] = []
        self._install(model.hf_model)

    @property
    def plan(self) -> SteerPlan | None:
        return getattr(self._local, "plan", None)

    @plan.setter
    def plan(self, value: SteerPlan | None) -> None:
        self._local.plan = value

    def _install(self, hf_model: Any) -> None:
        layers, mlp_out, attn_out = _decoder_modules(hf_model)
        for layer, block in enumerate(layers):
            self._handles.append(
                block.register_forward_pre_hook(
                    self._pre_hook(("hook_resid_pre", layer)), with_kwargs=True
                )
            )
            self._handles.append(
                block.register_forward_hook(self._post_hook(("hook_resid_post", layer)))
            )
            self._handles.append(
                mlp_out(block).register_forward_pre_hook(
                    self._pre_hook(("mlp.hook_post", layer)), with_kwargs=True
                )
            )
            self._handles.append(  # the MLP's output, where a transcoder's features write
                block.mlp.register_forward_hook(self._post_hook(("mlp.hook_out", layer)))
            )
            self._handles.append(
                attn_out(block).register_forward_pre_hook(
                    self._pre_hook(("attn.hook_z", layer)), with_kwargs=True
                )
            )

    def _pre_hook(self, key: tuple[str, int]) -> Callable[..., Any]:
        def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            plan = self.plan
            if plan is None:
                return None
            if args:
                new = plan.apply(key, args[0])
                return None if new is None else ((new, *args[1:]), kwargs)
            if "hidden_states" in kwargs:
                new = plan.apply(key, kwargs["hidden_states"])
                return None if new is None else (args, {**kwargs, "hidden_states": new})
            return None

        return hook

    def _post_hook(self, key: tuple[str, int]) -> Callable[..., Any]:
        def hook(module: Any, args: tuple[Any, ...], output: Any) -> Any:
            plan = self.plan
            if plan is None:
                return None
            hidden = output[0] if isinstance(output, tuple) else output
            new = plan.apply(key, hidden)
            if new is None:
                return None
            return (new, *output[1:]) if isinstance(output, tuple) else new

        return hook


def _decoder_modules(hf_model: Any) -> tuple[Any, Callable[[Any], Any], Callable[[Any], Any]]:
    """Decoder blocks and, per block, the MLP's output projection and attention's output
    projection (whose inputs are mlp.hook_post and attn.hook_z)."""
    inner = getattr(hf_model, "model", None)
    if inner is not None and hasattr(inner, "layers"):  # Llama, Mistral, Gemma, Qwen, ...
        return inner.layers, lambda b: b.mlp.down_proj, lambda b: b.self_attn.o_proj
    transformer = getattr(hf_model, "transformer", None)
    if transformer is not None and hasattr(transformer, "h"):  # GPT-2 family
        return transformer.h, lambda b: b.mlp.c_proj, lambda b: b.attn.c_proj
    gpt_neox = getattr(hf_model, "gpt_neox", None)
    if gpt_neox is not None:
        return gpt_neox.layers, lambda b: b.mlp.dense_4h_to_h, lambda b: b.attention.dense
    raise InvalidInput(f"steering is not supported for {type(hf_model).__name__}")


@dataclass
class StepEvent:
    """Tokens sampled in one step, per row (None for a row already finished)."""

    step: int
    tokens: list[int | None]
    logprobs: list[dict[str, Any] | None] = field(default_factory=list)


@dataclass
class GenerationResult:
    new_tokens: list[list[int]]
    logprobs: list[list[dict[str, Any]]]


def _logprob_entry(
    model: LoadedModel, log_probs: torch.Tensor, token: int, n: int
) -> dict[str, Any]:
    top_values, top_ids = torch.topk(log_probs, n)
    decode = model.tokenizer.decode
    return {
        "token": decode([token]),
        "logprob": float(log_probs[token]),
        "top_logprobs": [
            {"token": decode([i]), "logprob": float(v)}
            for v, i in zip(top_values.tolist(), top_ids.tolist(), strict=True)
        ],
    }


@torch.inference_mode()
def generate(
    model: LoadedModel,
    hooks: SteeringHooks,
    prompt_ids: list[int],
    plan: SteerPlan,
    *,
    n_new_tokens: int,
    temperature: float,
    freq_penalty: float,
    seed: int,
    n_logprobs: int = 0,
    on_step: Callable[[StepEvent], None] | None = None,
    stop: threading.Event | None = None,
) -> GenerationResult:
    """Sample `n_new_tokens` for every row of `plan.rows` (same prompt) with a KV cache.

    Each row samples with its own generator seeded `seed`, so rows are independent of the
    batch they share. Rows stop at EOS. Frequency penalty subtracts freq_penalty × count of
    each token so far (prompt included), as TransformerLens does.
    """
    from transformers import DynamicCache

    model.use_torch_threads()
    hf = model.hf_model
    device = model.device
    batch = int(plan.rows.numel())
    input_ids = torch.tensor([prompt_ids] * batch, dtype=torch.long, device=device)
    generators = [torch.Generator(device=device).manual_seed(seed) for _ in range(batch)]
    counts = torch.zeros(batch, model.d_vocab, device=device)
    counts.scatter_add_(1, input_ids, torch.ones_like(input_ids, dtype=counts.dtype))
    eos = {model.tokenizer.eos_token_id} - {None}
    finished = [False] * batch
    new_tokens: list[list[int]] = [[] for _ in range(batch)]
    logprobs: list[list[dict[str, Any]]] = [[] for _ in range(batch)]
    cache = DynamicCache()
    plan.in_prefill = True
    hooks.plan = plan
    try:
        step_input = input_ids
        for step in range(n_new_tokens):
            if stop is not None and stop.is_set():
                break
            # logits_to_keep=1: the prefill needs only the last position's logits.
            out = hf(input_ids=step_input, cache=cache, use_cache=True, logits_to_keep=1)
            plan.in_prefill = False
            cache = out.cache
            logits = out.logits[:, -1, :].float()  # [batch, d_vocab]
            scores = logits - freq_penalty * counts if freq_penalty else logits
            if temperature > 0:
                probs = torch.softmax(scores / temperature, dim=-1)  # [batch, d_vocab]
                next_ids = [
                    int(torch.multinomial(probs[row], 1, generator=generators[row]))
                    for row in range(batch)
                ]
            else:
                next_ids = scores.argmax(dim=-1).tolist()
            event = StepEvent(step=step, tokens=[], logprobs=[])
            for row, token in enumerate(next_ids):
                if finished[row]:
                    event.tokens.append(None)
                    event.logprobs.append(None)
                    continue
                new_tokens[row].append(token)
                entry = None
                if n_logprobs > 0:
                    entry = _logprob_entry(
                        model, torch.log_softmax(logits[row], -1), token, n_logprobs
                    )
                    logprobs[row].append(entry)
                event.tokens.append(token)
                event.logprobs.append(entry)
                if token in eos:
                    finished[row] = True
            counts[torch.arange(batch), torch.tensor(next_ids)] += 1
            if on_step is not None:
                on_step(event)
            if all(finished):
                break
            step_input = torch.tensor(next_ids, dtype=torch.long, device=device).view(batch, 1)
    finally:
        hooks.plan = None
    return GenerationResult(new_tokens=new_tokens, logprobs=logprobs)


def check_strength(coefficient: float) -> None:
    if not torch.isfinite(torch.tensor(coefficient)) or abs(coefficient) > 1e6:
        raise Unprocessable(f"steering coefficient {coefficient} is not a usable number")
