"""Concept testing: which features fire specifically on a concept's examples.

A concept is a text file of examples, one per line (we ship eight under `concepts/`).
Each example and each base window (the base corpus cut into pieces of about the same
length as the examples) is scored per feature by its max activation over real tokens.
A feature's score for a concept is

    score = (mean_concept - mean_base) / (std_base + 0.1 · max_base + 1e-6)

where mean/std/max are over examples or base windows: how many base standard deviations
the concept lifts the feature (the `0.1 · max` term keeps features that never fire on
the base from dividing by zero and dominating with tiny activations). We also report
the share of concept examples and base windows where the feature fires.
"""

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from interpedia_core.errors import InvalidInput

ForwardToHook = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class ConceptFeature:
    """One row of a concept's table."""

    feature: int
    score: float
    mean_concept: float
    mean_base: float
    frac_concept: float
    frac_base: float


@dataclass
class ConceptResult:
    concept: str
    n_examples: int
    features: list[ConceptFeature]


def builtin_concepts() -> dict[str, list[str]]:
    """The shipped concept sets, by name."""
    folder = resources.files("interpedia_trainer") / "concepts"
    out: dict[str, list[str]] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".txt"):
            out[entry.name[:-4]] = _lines(entry.read_text(encoding="utf-8"))
    return out


def read_concepts(paths: list[Path]) -> dict[str, list[str]]:
    """Concept sets from text files (name = file stem); `InvalidInput` if one is empty."""
    out: dict[str, list[str]] = {}
    for path in paths:
        try:
            lines = _lines(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read concept file {path}: {exc}") from exc
        if not lines:
            raise InvalidInput(f"concept file {path} has no examples")
        out[Path(path).stem] = lines
    return out


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


@torch.no_grad()
def _max_per_example(
    forward_to_hook: ForwardToHook,
    sae: Any,
    token_lists: list[list[int]],
    ignore: torch.Tensor,
    pad_id: int,
    batch_size: int = 16,
) -> torch.Tensor:
    """[n_examples, d_sae]: each feature's max activation over the example's real tokens."""
    rows = []
    for first in range(0, len(token_lists), batch_size):
        group = token_lists[first : first + batch_size]
        length = max(len(t) for t in group)
        batch = torch.full((len(group), length), pad_id, dtype=torch.long)
        real = torch.zeros(len(group), length, dtype=torch.bool)
        for i, toks in enumerate(group):
            batch[i, : len(toks)] = torch.tensor(toks)  # right padding: causal, so harmless
            real[i, : len(toks)] = True
        real &= ~torch.isin(batch, ignore)
        acts = forward_to_hook(batch)  # [b, T, d]
        feats = sae.encode(acts.reshape(-1, acts.shape[-1]).to(sae.W_dec.dtype)).float()
        feats = feats.view(len(group), length, -1) * real[..., None]
        rows.append(feats.amax(dim=1))
    return torch.cat(rows)


def score_concepts(
    forward_to_hook: ForwardToHook,
    sae: Any,
    tokenizer: Any,
    concepts: dict[str, list[str]],
    base_texts: list[str],
    *,
    top_n: int = 10,
    prepend_bos: bool = True,
    ignore_token_ids: list[int] | None = None,
    max_base_windows: int = 256,
) -> list[ConceptResult]:
    """For each concept, the `top_n` features most specific to it versus the base texts."""
    if not concepts:
        raise InvalidInput("no concepts given")
    if not base_texts:
        raise InvalidInput("the base corpus is empty")
    bos = tokenizer.bos_token_id if prepend_bos else None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ignore = torch.tensor(sorted(set(ignore_token_ids or [])), dtype=torch.long)

    def encode(text: str) -> list[int]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return ([bos] if bos is not None else []) + ids

    concept_tokens = {name: [encode(t) for t in texts] for name, texts in concepts.items()}
    lengths = [len(t) for toks in concept_tokens.values() for t in toks]
    window = max(4, int(sum(lengths) / len(lengths)))
    base_tokens: list[list[int]] = []
    for text in base_texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        for i in range(0, len(ids) - window + 2, window - 1):
            base_tokens.append(([bos] if bos is not None else []) + ids[i : i + window - 1])
            if len(base_tokens) >= max_base_windows:
                break
        if len(base_tokens) >= max_base_windows:
            break
    if not base_tokens:
        raise InvalidInput("the base corpus is shorter than one concept example")

    base = _max_per_example(forward_to_hook, sae, base_tokens, ignore, pad)  # [n_base, d_sae]
    mean_b, std_b, max_b = base.mean(0), base.std(0, unbiased=False), base.amax(0)
    frac_b = (base > 0).float().mean(0)
    results = []
    for name, toks in concept_tokens.items():
        acts = _max_per_example(forward_to_hook, sae, toks, ignore, pad)
        mean_c, frac_c = acts.mean(0), (acts > 0).float().mean(0)
        score = (mean_c - mean_b) / (std_b + 0.1 * max_b + 1e-6)
        top = score.topk(min(top_n, score.numel()))
        results.append(
            ConceptResult(
                concept=name,
                n_examples=len(toks),
                features=[
                    ConceptFeature(
                        feature=int(f),
                        score=float(score[f]),
                        mean_concept=float(mean_c[f]),
                        mean_base=float(mean_b[f]),
                        frac_concept=float(frac_c[f]),
                        frac_base=float(frac_b[f]),
                    )
                    for f in top.indices.tolist()
                ],
            )
        )
    return results
