"""Scorers: how well an explanation predicts where its feature fires.

- Embedding (CPU, no LLM): embed the explanation and every example; the score is
  the ROC-AUC of explanation–example cosine similarity for activating against
  non-activating examples (1 = every activating example is closer).
- Detection (LLM judge): the judge sees 5 examples at a time and says which ones
  activate. Fuzzing: the judge sees examples with tokens marked and says whether
  the marks are where the explanation says. Both score balanced accuracy, with
  precision, recall and F1 in the details.
- Simulation (LLM): the judge predicts 0–10 for every token; the score is the
  Pearson correlation of predictions with the true activations, over all tokens.

When the caller gives no non-activating examples (Neuronpedia's API sends only
activating ones), contrast examples are made from the activating ones: the same
text with the marked tokens removed (embedding, detection), or with other
tokens marked (fuzzing). Each breakdown row says which kind it is (`distance`
-1 for contrast examples, else the rank of the example by max activation).
"""

import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interpedia_autointerp.embeddings import Embedder
from interpedia_autointerp.examples import (
    ActivationRecord,
    format_marked,
    split_examples,
    token_text,
    window,
)
from interpedia_autointerp.explain import check_explanation
from interpedia_autointerp.llm import LLMClient
from interpedia_core.errors import InvalidInput, UpstreamError

DETECTION_BATCH = 5


# --- metrics ------------------------------------------------------------------------------


def roc_auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a random positive scores above a random negative), ties counting half."""
    if not positive or not negative:
        raise InvalidInput("ROC-AUC needs both activating and non-activating examples")
    pos = np.asarray(positive, dtype=np.float64)[:, None]
    neg = np.asarray(negative, dtype=np.float64)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


@dataclass(frozen=True)
class ClassifierMetrics:
    balanced_accuracy: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int


def classifier_metrics(truth: Sequence[bool], predicted: Sequence[bool]) -> ClassifierMetrics:
    """Balanced accuracy = mean recall over the classes present (so one class still scores)."""
    if len(truth) != len(predicted) or not truth:
        raise ValueError("truth and predictions must be non-empty and the same length")
    tp = sum(t and p for t, p in zip(truth, predicted, strict=True))
    fp = sum((not t) and p for t, p in zip(truth, predicted, strict=True))
    tn = sum((not t) and (not p) for t, p in zip(truth, predicted, strict=True))
    fn = sum(t and (not p) for t, p in zip(truth, predicted, strict=True))
    recalls = []
    if tp + fn:
        recalls.append(tp / (tp + fn))
    if tn + fp:
        recalls.append(tn / (tn + fp))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ClassifierMetrics(
        balanced_accuracy=sum(recalls) / len(recalls),
        accuracy=(tp + tn) / len(truth),
        precision=precision,
        recall=recall,
        f1=f1,
        true_positives=tp,
        false_positives=fp,
        true_negatives=tn,
        false_negatives=fn,
    )


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; 0 when either side is constant (a flat prediction explains nothing)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.size != b.size or a.size < 2:
        raise ValueError("correlation needs two equal-length series of 2+ values")
    a = a - a.mean()
    b = b - b.mean()
    denominator = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


# --- contrast examples ----------------------------------------------------------------------


def without_marked(record: ActivationRecord) -> ActivationRecord:
    """The example with its marked (activating) tokens removed: a non-activating contrast."""
    keep = [i for i in range(len(record.tokens)) if i not in set(record.marked_positions())]
    return ActivationRecord([record.tokens[i] for i in keep], [0.0] * len(keep))


def _ranked(activating: Sequence[ActivationRecord]) -> list[ActivationRecord]:
    return sorted(activating, key=lambda r: -r.max_value)


# --- embedding scorer -----------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddingBreakdown:
    text: str
    distance: int  # rank by max activation for activating examples, -1 for contrast ones
    similarity: float
    activating: bool


@dataclass(frozen=True)
class ScoreResult:
    """A score with its per-example breakdown; `details` is what gets stored as JSON."""

    type_name: str
    value: float
    breakdown: list[Any]
    details: dict[str, Any] = field(default_factory=dict)
    scorer_model: str | None = None


@dataclass(frozen=True)
class EmbeddingContrast:
    """The example texts the embedding scorer compares an explanation with."""

    activating: list[str]  # ranked by max activation
    non_activating: list[str]
    synthetic: bool  # the contrast texts are the activating ones with marked tokens removed


def embedding_contrast(records: Sequence[ActivationRecord]) -> EmbeddingContrast:
    """What `embedding_score` embeds besides the explanation, in its order; a benchmark
    scoring many explanations embeds these once, in one batched pass.

    Each example is cut to the window around its peak that every other scorer shows (as
    delphi's embedding scorer does): in a whole 128-token context, the marked token the
    synthetic contrast removes is too small a part of the text to tell anything apart."""
    activating, non_activating = split_examples(records)
    activating = [window(r) for r in _ranked(activating)]
    synthetic = not non_activating
    negatives = (
        [without_marked(r) for r in activating]
        if synthetic
        else [window(r) for r in non_activating]
    )
    return EmbeddingContrast(
        [r.text() for r in activating], [r.text() for r in negatives], synthetic
    )


async def embedding_score(
    embedder: Embedder, explanation: str, records: Sequence[ActivationRecord]
) -> ScoreResult:
    explanation = check_explanation(explanation)
    contrast = embedding_contrast(records)
    texts = contrast.activating + contrast.non_activating
    vectors = await embedder.embed([explanation, *texts])  # [1 + n, dims], unit rows
    similarities = (vectors[1:] @ vectors[0]).tolist()
    pos = similarities[: len(contrast.activating)]
    neg = similarities[len(contrast.activating) :]
    breakdown = [
        EmbeddingBreakdown(t, i, s, True) for i, (t, s) in enumerate(zip(texts, pos, strict=False))
    ] + [EmbeddingBreakdown(t, -1, s, False) for t, s in zip(texts[len(pos) :], neg, strict=True)]
    return ScoreResult(
        "embedding",
        roc_auc(pos, neg),
        breakdown,
        {
            "embedding_model": embedder.name,
            "n_activating": len(pos),
            "n_non_activating": len(neg),
            "contrast": "marked-tokens-removed" if contrast.synthetic else "given",
        },
        embedder.name,
    )


# --- LLM judges ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifierBreakdown:
    str_tokens: list[str]
    activations: list[float]
    distance: int
    ground_truth: bool
    prediction: bool
    highlighted: bool
    probability: float
    correct: bool


_LIST = re.compile(r"\[[^\[\]]*\]")


def parse_int_list(answer: str, expected: int, *, low: int, high: int) -> list[int]:
    """The last JSON list of `expected` integers in [low, high] in the answer."""
    for candidate in reversed(_LIST.findall(answer)):
        try:
            values = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if (
            isinstance(values, list)
            and len(values) == expected
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        ):
            return [min(high, max(low, round(v))) for v in values]
    raise UpstreamError(
        f"the LLM judge did not answer with a list of {expected} numbers between {low} and {high}"
    )


DETECTION_PROMPT = """You judge whether text examples match a description of a language-model \
feature. The feature is described as:
{explanation}

For each example below, answer 1 if the feature would activate on some token of it, else 0.
Answer with only a JSON list of {n} numbers, e.g. [1, 0, 0, 1, 0].

{examples}"""

FUZZING_PROMPT = """You judge whether highlighted tokens match a description of a \
language-model feature. The feature is described as:
{explanation}

In each example some tokens are wrapped in << >>. Answer 1 if the highlighted tokens are \
exactly the kind the description says the feature activates on, else 0.
Answer with only a JSON list of {n} numbers, e.g. [1, 0, 0, 1, 0].

{examples}"""


async def _judge(
    client: LLMClient, template: str, explanation: str, texts: list[str]
) -> list[bool]:
    predictions: list[bool] = []
    for start in range(0, len(texts), DETECTION_BATCH):
        batch = texts[start : start + DETECTION_BATCH]
        examples = "\n".join(f"Example {i + 1}: {t}" for i, t in enumerate(batch))
        prompt = template.format(explanation=explanation, n=len(batch), examples=examples)
        answer = await client.complete([{"role": "user", "content": prompt}], max_tokens=100)
        predictions += [v == 1 for v in parse_int_list(answer, len(batch), low=0, high=1)]
    return predictions


def _classifier_result(
    type_name: str,
    client: LLMClient,
    shown: list[tuple[ActivationRecord, int, bool, list[int]]],
    predictions: list[bool],
) -> ScoreResult:
    truth = [g for _, _, g, _ in shown]
    metrics = classifier_metrics(truth, predictions)
    breakdown = [
        ClassifierBreakdown(
            str_tokens=record.tokens,
            activations=record.values,
            distance=distance,
            ground_truth=ground,
            prediction=predicted,
            highlighted=bool(marks),
            probability=1.0 if predicted else 0.0,
            correct=ground == predicted,
        )
        for (record, distance, ground, marks), predicted in zip(shown, predictions, strict=True)
    ]
    details = {k: v for k, v in metrics.__dict__.items()}
    return ScoreResult(type_name, metrics.balanced_accuracy, breakdown, details, client.model)


def _shuffled(items: list[Any], seed: int) -> list[Any]:
    # Mixed order, so the judge can't learn "the first ones activate"; seeded for repeatability.
    rng = random.Random(seed)
    items = list(items)
    rng.shuffle(items)
    return items


async def detection_score(
    client: LLMClient, explanation: str, records: Sequence[ActivationRecord], *, seed: int = 0
) -> ScoreResult:
    explanation = check_explanation(explanation)
    activating, non_activating = split_examples(records)
    activating = [window(r) for r in _ranked(activating)]
    negatives = (
        [without_marked(r) for r in activating]
        if not non_activating
        else [window(r) for r in non_activating]
    )
    shown = _shuffled(
        [(r, i, True, []) for i, r in enumerate(activating)]
        + [(r, -1, False, []) for r in negatives],
        seed,
    )
    texts = [" ".join(r.text().split()) for r, _, _, _ in shown]
    predictions = await _judge(client, DETECTION_PROMPT, explanation, texts)
    return _classifier_result("detection", client, shown, predictions)


def _wrong_marks(record: ActivationRecord, count: int, rng: random.Random) -> list[int]:
    """`count` positions that are not the example's activating ones (random, repeatable)."""
    right = set(record.marked_positions())
    candidates = [
        i for i, t in enumerate(record.tokens) if i not in right and token_text(t).strip()
    ]
    return sorted(rng.sample(candidates, min(count, len(candidates))))


async def fuzzing_score(
    client: LLMClient, explanation: str, records: Sequence[ActivationRecord], *, seed: int = 0
) -> ScoreResult:
    explanation = check_explanation(explanation)
    activating, non_activating = split_examples(records)
    activating = [window(r) for r in _ranked(activating)]
    rng = random.Random(seed)
    shown: list[tuple[ActivationRecord, int, bool, list[int]]] = [
        (r, i, True, r.marked_positions()) for i, r in enumerate(activating)
    ]
    contrast = [window(r) for r in non_activating] or activating
    for r in contrast:
        marks = _wrong_marks(r, max(1, len(r.marked_positions())), rng)
        if marks:
            shown.append((r, -1, False, marks))
    shown = _shuffled(shown, seed)
    texts = [" ".join(format_marked(r, marks).split()) for r, _, _, marks in shown]
    predictions = await _judge(client, FUZZING_PROMPT, explanation, texts)
    return _classifier_result("fuzz", client, shown, predictions)


SIMULATION_PROMPT = """A language-model feature is described as:
{explanation}

Predict how strongly the feature activates on each token of the text below, from 0 (not at \
all) to 10 (maximally). The tokens are numbered:
{tokens}

Answer with only a JSON list of {n} integers, one per token."""


@dataclass(frozen=True)
class SimulationBreakdown:
    tokens: list[str]
    activations: list[float]
    predicted: list[int]
    correlation: float | None


async def simulation_score(
    client: LLMClient, explanation: str, records: Sequence[ActivationRecord]
) -> ScoreResult:
    """Correlation of simulated (0–10) and true activations over all tokens of all examples."""
    explanation = check_explanation(explanation)
    activating, non_activating = split_examples(records)
    shown = [window(r) for r in [*_ranked(activating), *non_activating]]
    breakdown = []
    all_true: list[float] = []
    all_predicted: list[float] = []
    for record in shown:
        numbered = "\n".join(
            f"{i}: {json.dumps(token_text(t))}" for i, t in enumerate(record.tokens)
        )
        prompt = SIMULATION_PROMPT.format(
            explanation=explanation, tokens=numbered, n=len(record.tokens)
        )
        answer = await client.complete(
            [{"role": "user", "content": prompt}], max_tokens=8 * len(record.tokens) + 50
        )
        predicted = parse_int_list(answer, len(record.tokens), low=0, high=10)
        correlation = pearson(predicted, record.values) if len(predicted) > 1 else None
        breakdown.append(SimulationBreakdown(record.tokens, record.values, predicted, correlation))
        all_true += record.values
        all_predicted += predicted
    value = pearson(all_predicted, all_true)
    return ScoreResult(
        "simulation",
        value,
        breakdown,
        {"n_examples": len(shown), "n_tokens": len(all_true)},
        client.model,
    )
