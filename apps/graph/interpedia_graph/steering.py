"""Forward passes and feature interventions on the replacement model (Neuronpedia's
`/forward-pass` and `/steer`).

A steered feature is set to its value at `token_active_position` plus `delta` (or to 0
when ablated), at `steer_position` or on every generated token, through circuit-tracer's
`feature_intervention_generate`. The default generation runs through the same call with
no interventions, so the two differ only by the intervention. Token positions are those
of the graph (`prompts.prompt_ids`): the prompt is passed as the text of those ids.
"""

from dataclasses import dataclass
from typing import Any

import torch

from interpedia_core.errors import InvalidInput
from interpedia_graph.prompts import UNSTEERABLE_POSITIONS


@dataclass(frozen=True)
class SalientLogits:
    input_tokens: list[str]
    tokens: list[str]
    token_ids: list[int]
    probabilities: list[float]


@torch.no_grad()
def next_token_logits(model: Any, input_ids: torch.Tensor) -> torch.Tensor:
    """[n_tokens, d_vocab] logits of the model itself (the replacement model's forward)."""
    return model._model(input_ids.unsqueeze(0)).logits[0]


@torch.no_grad()
def salient_logits(
    model: Any, input_ids: torch.Tensor, max_n_logits: int, desired_logit_prob: float
) -> SalientLogits:
    """The next-token candidates attribution would target, chosen the way it chooses them."""
    from circuit_tracer.attribution.targets import AttributionTargets

    logits = next_token_logits(model, input_ids)[-1]  # [d_vocab]
    targets = AttributionTargets(
        None,
        logits,
        model.unembed_proj,
        model.tokenizer,
        max_n_logits=max_n_logits,
        desired_logit_prob=desired_logit_prob,
    )
    return SalientLogits(
        input_tokens=[model.tokenizer.decode([t]) for t in input_ids.tolist()],
        tokens=[t.token_str for t in targets.logit_targets],
        token_ids=[int(t.vocab_idx) for t in targets.logit_targets],
        probabilities=[float(p) for p in targets.logit_probabilities],
    )


@dataclass(frozen=True)
class FeatureEdit:
    layer: int
    index: int
    token_active_position: int
    steer_position: int | None
    steer_generated_tokens: bool
    delta: float | None
    ablate: bool


@dataclass(frozen=True)
class Generation:
    text: str  # prompt and continuation, as Neuronpedia returns them
    tokens: list[str]  # prompt and continuation, one string per token
    top_logits: list[list[tuple[str, float]]]  # per token; empty for prompt tokens but the last


def check_edits(edits: list[FeatureEdit], n_tokens: int, n_layers: int, d_transcoder: int) -> None:
    """Refuse what Neuronpedia's server refuses, with its reasons, before any work."""
    for i, edit in enumerate(edits):
        where = f"features[{i}]"
        if edit.ablate == (edit.delta is not None):
            raise InvalidInput(f"{where}: give a delta, or ablate without one")
        if edit.steer_generated_tokens == (edit.steer_position is not None):
            raise InvalidInput(
                f"{where}: give a steer_position, or steer_generated_tokens without one"
            )
        if edit.layer >= n_layers or edit.index >= d_transcoder:
            raise InvalidInput(
                f"{where}: the transcoders have {n_layers} layers of {d_transcoder} features"
            )
        for name in ("token_active_position", "steer_position"):
            position = getattr(edit, name)
            if position is not None and position >= n_tokens:
                raise InvalidInput(
                    f"{where}: {name} {position} is past the prompt's {n_tokens} tokens"
                )
            if position in UNSTEERABLE_POSITIONS and name == "steer_position":
                raise InvalidInput(
                    f"{where}: position {position} is the special token attribution leaves out"
                )


def _top_k(logits: torch.Tensor, tokenizer: Any, k: int) -> list[tuple[str, float]]:
    probs = torch.softmax(logits.float(), dim=-1)  # [d_vocab]
    top = torch.topk(probs, k)
    pairs = zip(top.indices.tolist(), top.values.tolist(), strict=True)
    return [(tokenizer.decode([i]), p) for i, p in pairs]


@torch.no_grad()
def generate(
    model: Any,
    input_ids: torch.Tensor,
    edits: list[FeatureEdit],
    *,
    n_tokens: int,
    top_k: int,
    temperature: float,
    freq_penalty: float,
    seed: int | None,
    freeze_attention: bool,
) -> Generation:
    """Continue the prompt with the edits applied (none: the default generation)."""
    tokenizer = model.tokenizer
    n_prompt = len(input_ids)
    interventions = []
    if edits:
        _, activations = model.get_activations(input_ids, sparse=False)  # [n_layers, n_pos, d_tc]
        for edit in edits:
            value = 0.0
            if not edit.ablate:
                current = activations[edit.layer, edit.token_active_position, edit.index]
                value = float(current) + float(edit.delta)
            position = slice(n_prompt, None) if edit.steer_generated_tokens else edit.steer_position
            interventions.append((edit.layer, position, edit.index, value))
    if seed is not None:
        torch.manual_seed(seed)
    sampling: dict[str, Any] = {"do_sample": temperature > 0, "max_new_tokens": n_tokens}
    if temperature > 0:
        sampling["temperature"] = temperature
    if freq_penalty:
        sampling["repetition_penalty"] = 1.0 + freq_penalty
    text, logits, _ = model.feature_intervention_generate(
        tokenizer.decode(input_ids),
        interventions,
        freeze_attention=freeze_attention,
        return_activations=False,
        **sampling,
    )
    # text: the prompt and its continuation; logits: [n_generated, d_vocab], the model's
    # distribution at each generated token. Re-encoding the text gives the generated ids
    # (the logits' argmax would ignore sampling and penalties).
    ids = tokenizer(text, add_special_tokens=False).input_ids
    continuation = ids[n_prompt:] if ids[:n_prompt] == input_ids.tolist() else ids
    tokens = [tokenizer.decode([t]) for t in input_ids.tolist() + continuation]
    # Logits after token i predict token i + 1: none for the prompt but its last token.
    top_logits = [[] for _ in range(n_prompt - 1)] + [
        _top_k(row, tokenizer, top_k) for row in logits
    ]
    top_logits = (top_logits + [[] for _ in tokens])[: len(tokens)]
    return Generation(text="".join(tokens), tokens=tokens, top_logits=top_logits)
