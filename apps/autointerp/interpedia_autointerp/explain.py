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

OFFLINE_TYPE_NAME = "interpedia-offline-v2"
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

# Symbols a feature can fire on, named as a person would say them in a description.
_SYMBOL_NAMES = {
    "\n": "line breaks",
    ".": "periods",
    ",": "commas",
    "?": "question marks",
    "!": "exclamation marks",
    ":": "colons",
    ";": "semicolons",
    "(": "opening parentheses",
    ")": "closing parentheses",
    '"': "quotation marks",
    "'": "apostrophes",
    "-": "hyphens",
    "$": "dollar signs",
    "%": "percent signs",
}


@dataclass(frozen=True)
class GeneratedExplanation:
    description: str
    type_name: str
    explanation_model_name: str | None


def _key(text: str) -> str:
    return text.strip().lower() or text  # keep pure whitespace (a newline feature) as itself


@dataclass(frozen=True)
class Word:
    """A whole word of an example, tokens `start:end`: sub-word pieces such as "recol" +
    "lect" are counted and shown as the word a reader knows ("recollect")."""

    key: str  # lower-cased text, or the symbol itself ("\n", ",")
    start: int
    end: int


def words(record: ActivationRecord) -> list[Word]:
    """The example's words: a token with no space before it that continues letters or
    digits belongs to the word before it; anything else starts a new one."""
    spans: list[tuple[int, int]] = []
    previous = ""
    for i, token in enumerate(record.tokens):
        text = token_text(token)
        if spans and previous[-1:].isalnum() and text[:1].isalnum():
            spans[-1] = (spans[-1][0], i + 1)
        else:
            spans.append((i, i + 1))
        previous = text
    return [
        Word(_key("".join(token_text(t) for t in record.tokens[start:end])), start, end)
        for start, end in spans
    ]


def meaningful(key: str) -> bool:
    """A word a reader can act on: a named symbol, a number, or letters (not a lone letter
    or a run of punctuation); what fails this is noise in a description."""
    if key in _SYMBOL_NAMES or key.isdigit():
        return True
    letters = sum(c.isalpha() for c in key)
    return letters >= 2 and letters >= len(key) - 1


def characteristic_words(
    activating: Sequence[ActivationRecord],
    non_activating: Sequence[ActivationRecord] = (),
    *,
    token_frequency: Mapping[str, float] | None = None,
    limit: int = 3,
) -> list[tuple[str, float]]:
    """The words that best characterise where the feature fires, with their scores.

    score = activation mass × sqrt(share of the word's occurrences that fire) × rarity,
    where the mass sums (strongest marked value in the word) / example-max over the
    words holding a marked token, and rarity is 0.35 for common English words (or
    -log10 of `token_frequency`, scaled, when given). Words that carry no meaning on
    their own (see `meaningful`) are left out.
    """
    mass: dict[str, float] = defaultdict(float)
    fired: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for record in activating:
        peak = record.max_value
        marked = set(record.marked_positions())
        for word in words(record):
            hits = [record.values[i] for i in range(word.start, word.end) if i in marked]
            if hits and meaningful(word.key):
                mass[word.key] += max(hits) / peak
                fired[word.key] += 1
    for record in [*activating, *non_activating]:
        seen.update(word.key for word in words(record))
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
    return [(k, s) for k, s in ranked[:limit] if s >= 0.25 * best]


def promoted_words(
    logit_tokens: Sequence[str], records: Sequence[ActivationRecord], limit: int = 2
) -> list[str]:
    """Logit-lens tokens that are whole, uncommon words: a space before, 3+ letters, and
    seen as a whole word in the examples. The rest are sub-word pieces ("ducive",
    "plicity", "earthqu") that say nothing to a reader, and the embedding scorer showed
    that even real words the examples never contain only blur the description."""
    known = {word.key for record in records for word in words(record)}
    found: list[str] = []
    for token in logit_tokens:
        text = token_text(token)
        word = text.strip().lower()
        whole = text[:1].isspace() and word.isalpha() and len(word) >= 3 and word in known
        if whole and word not in COMMON_WORDS and word not in found:
            found.append(word)
    return found[:limit]


def _listing(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def describe(keys: Sequence[str], promoted: Sequence[str] = ()) -> str:
    """'the word "tax"', 'the words "recollect" and "recall"', 'commas', combined with
    'and', then what the feature makes the model say next."""
    quoted = [f'"{k}"' for k in keys if k not in _SYMBOL_NAMES]
    named = [_SYMBOL_NAMES[k] for k in keys if k in _SYMBOL_NAMES]
    parts = []
    if quoted:
        parts.append(("the word " if len(quoted) == 1 else "the words ") + _listing(quoted))
    if named:
        parts.append(_listing(named))
    text = " and ".join(parts)
    if promoted:
        text += ", before " + _listing([f'"{w}"' for w in promoted])
    return text


def offline_explanation(
    records: Sequence[ActivationRecord],
    logit_tokens: Sequence[str] = (),
    *,
    token_frequency: Mapping[str, float] | None = None,
) -> GeneratedExplanation:
    """A short phrase naming the words the feature fires on; needs no LLM."""
    activating, non_activating = split_examples(records)
    found = characteristic_words(activating, non_activating, token_frequency=token_frequency)
    if found:
        keys = [k for k, _ in found]
        promoted = [w for w in promoted_words(logit_tokens, records) if w not in keys]
        description = describe(keys, promoted)
    else:
        description = "varied tokens with no word in common"
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
