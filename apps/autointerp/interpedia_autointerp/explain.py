"""Explainers: what a feature does, in a short sentence, from its examples and logit lens.

Two explainers share one input (activating examples and the tokens the
feature's decoder direction promotes):

- `offline_explanation`: no LLM. It ranks the tokens the feature fires on by
  activation mass, discounted by how often the same token appears in the
  examples *without* firing and by how common the word is in English, then adds
  the most typical phrase around the peak and the logit-lens tokens. Its
  `type_name` says how it was made, so nobody mistakes it for an LLM's.
- `llm_explanation`: delphi's prompt shape (windows of about 32 tokens, tokens
  above 0.3 × the example max wrapped in << >>, the answer after a marker)
  sent to any OpenAI-compatible chat model.
"""

import math
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from interpedia_autointerp.examples import (
    ActivationRecord,
    format_example,
    split_examples,
    token_text,
    window,
)
from interpedia_autointerp.llm import LLMClient
from interpedia_core.errors import InvalidInput, UpstreamError

OFFLINE_TYPE_NAME = "interpedia-offline-v1"
OFFLINE_MODEL_NAME = "token-statistics"
LLM_TYPE_NAME = "interpedia-llm-v1"

MAX_EXAMPLES_IN_PROMPT = 20
MAX_EXPLANATION_CHARS = 300

# The most frequent English words (a stand-in for corpus frequency when none is given):
# a feature that fires on "the" is rare, one whose examples merely contain it is common.
_COMMON_WORDS_TEXT = """
the of and to a in is it you that he was for on are with as i his they be at one have this
from or had by not but what some we can out other were all there when up use your how said
an each she which do their if will way about many then them would so these her him has
more could go come did my no most who over than been its only into our also new just any
those very after before where why me us such here same while
"""
COMMON_WORDS = frozenset(_COMMON_WORDS_TEXT.split())

_SYMBOL_NAMES = {
    "\n": "newline",
    ".": "period",
    ",": "comma",
    "?": "question mark",
    "!": "exclamation mark",
    ":": "colon",
    ";": "semicolon",
    "(": "opening parenthesis",
    ")": "closing parenthesis",
    '"': "quotation mark",
    "'": "apostrophe",
    "-": "hyphen",
}


@dataclass(frozen=True)
class GeneratedExplanation:
    description: str
    type_name: str
    explanation_model_name: str | None


def _key(token: str) -> str:
    text = token_text(token)
    return text.strip().lower() or text  # keep pure whitespace (a newline feature) as itself


def _show(key: str) -> str:
    if key in _SYMBOL_NAMES:
        return _SYMBOL_NAMES[key]
    if not key.strip():
        return "whitespace"
    return f'"{key}"'


def characteristic_tokens(
    activating: Sequence[ActivationRecord],
    non_activating: Sequence[ActivationRecord] = (),
    *,
    token_frequency: Mapping[str, float] | None = None,
    limit: int = 4,
) -> list[tuple[str, float]]:
    """The tokens that best characterise where the feature fires, with their scores.

    score = activation mass × sqrt(share of the token's occurrences that fire) × rarity,
    where the mass sums value / example-max over marked positions and rarity is 0.35 for
    common English words (or -log10 of `token_frequency`, scaled, when given).
    """
    mass: dict[str, float] = defaultdict(float)
    fired: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for record in activating:
        peak = record.max_value
        for i in record.marked_positions():
            key = _key(record.tokens[i])
            mass[key] += record.values[i] / peak
            fired[key] += 1
    for record in [*activating, *non_activating]:
        for token in record.tokens:
            seen[_key(token)] += 1
    scores = {}
    for key, m in mass.items():
        precision = fired[key] / max(seen[key], fired[key])
        if token_frequency is not None and key in token_frequency:
            rarity = min(1.0, max(0.1, -math.log10(max(token_frequency[key], 1e-9)) / 6))
        else:
            rarity = 0.35 if key in COMMON_WORDS else 1.0
        scores[key] = m * math.sqrt(precision) * rarity
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    if not ranked:
        return []
    best = ranked[0][1]
    return [(k, s) for k, s in ranked[:limit] if s >= 0.15 * best]


def typical_phrase(activating: Sequence[ActivationRecord], before: int = 3) -> str | None:
    """The most frequent short phrase ending at an example's strongest token."""
    phrases: Counter[str] = Counter()
    for record in activating:
        peak = max(range(len(record.values)), key=lambda i: record.values[i])
        start = max(0, peak - before)
        text = "".join(token_text(t) for t in record.tokens[start : peak + 2])
        text = " ".join(text.split())
        if len(text) >= 3:
            phrases[text] += 1
    if not phrases:
        return None
    return phrases.most_common(1)[0][0]


def offline_explanation(
    records: Sequence[ActivationRecord],
    logit_tokens: Sequence[str] = (),
    *,
    token_frequency: Mapping[str, float] | None = None,
) -> GeneratedExplanation:
    """A short description from token statistics and the logit lens; needs no LLM."""
    activating, non_activating = split_examples(records)
    tokens = characteristic_tokens(activating, non_activating, token_frequency=token_frequency)
    parts = [", ".join(_show(k) for k, _ in tokens)] if tokens else []
    phrase = typical_phrase(activating)
    if phrase:
        parts.append(f'as in "{phrase}"')
    promoted = [_show(_key(t)) for t in logit_tokens if _key(t).strip()][:3]
    if promoted:
        parts.append("then " + ", ".join(promoted))
    description = "; ".join(parts) if parts else "fires on varied tokens"
    return GeneratedExplanation(description, OFFLINE_TYPE_NAME, OFFLINE_MODEL_NAME)


# --- LLM explainer ------------------------------------------------------------------------

EXPLAINER_SYSTEM_PROMPT = """You are a meticulous AI researcher explaining one feature of a \
language model's sparse autoencoder. You see text examples where the feature activates; the \
tokens it activates on most strongly are wrapped in << and >>. You may also see the tokens the \
feature makes the model predict next. Find what the marked tokens have in common (a word, a \
concept, a grammatical role, a context) and say it concisely.

Think briefly, then end with one line of the form
Explanation: <a phrase of at most 15 words, no quotes>"""


def build_explainer_messages(
    activating: Sequence[ActivationRecord], logit_tokens: Sequence[str] = ()
) -> list[dict[str, str]]:
    strongest = sorted(activating, key=lambda r: -r.max_value)[:MAX_EXAMPLES_IN_PROMPT]
    lines = []
    for n, record in enumerate(strongest, 1):
        shown = window(record)
        lines.append(f"Example {n}: {format_example(shown)}")
        peak = shown.max_value
        marked = [
            f"{token_text(shown.tokens[i]).strip() or repr(shown.tokens[i])} "
            f"({round(10 * shown.values[i] / peak)})"
            for i in shown.marked_positions()
        ]
        lines.append(f"Activations (0-10): {', '.join(marked)}")
    if logit_tokens:
        promoted = ", ".join(token_text(t).strip() or repr(t) for t in logit_tokens[:10])
        lines.append(f"\nTokens this feature promotes next: {promoted}")
    return [
        {"role": "system", "content": EXPLAINER_SYSTEM_PROMPT},
        {"role": "user", "content": "\n".join(lines)},
    ]


_MARKER = re.compile(r"explanation\s*[:\-]\s*(.+)", re.IGNORECASE)


def parse_explanation(answer: str) -> str:
    """The explanation after the last marker (or a lone short line); `UpstreamError` if none."""
    matches = _MARKER.findall(answer)
    if matches:
        candidate = matches[-1]
    else:
        lines = [line for line in answer.strip().splitlines() if line.strip()]
        if len(lines) != 1:
            raise UpstreamError("the LLM's answer has no 'Explanation:' line")
        candidate = lines[0]
    candidate = candidate.strip()
    for _ in range(2):  # quotes, emphasis and a final period, in either order
        candidate = candidate.strip("\"'`* ").rstrip(".")
    if not candidate:
        raise UpstreamError("the LLM's explanation is empty")
    if len(candidate) > MAX_EXPLANATION_CHARS:
        raise UpstreamError(
            f"the LLM's explanation is {len(candidate)} characters; expected a short phrase"
        )
    return candidate


async def llm_explanation(
    client: LLMClient,
    records: Sequence[ActivationRecord],
    logit_tokens: Sequence[str] = (),
) -> GeneratedExplanation:
    activating, _ = split_examples(records)
    answer = await client.complete(build_explainer_messages(activating, logit_tokens))
    return GeneratedExplanation(parse_explanation(answer), LLM_TYPE_NAME, client.model)


def check_explanation(text: str) -> str:
    """Refuse an empty explanation: a scorer cannot score nothing."""
    text = text.strip()
    if not text:
        raise InvalidInput("the explanation is empty")
    return text
