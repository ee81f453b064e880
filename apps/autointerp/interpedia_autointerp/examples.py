"""Activation examples as explainers and scorers see them.

An example is a window of tokens with the feature's value on each (a
Neuronpedia `Activation` row, or the `{tokens, values}` of its autointerp
API). Tokens come straight from the model's tokenizer, so they carry its
word-boundary marks (`Ġ`, `▁`) and byte-level newlines; `token_text` and
`detokenize` turn them back into text.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from interpedia_core.errors import InvalidInput

# delphi's convention: tokens above this share of the example's max are "the" activating ones.
MARK_THRESHOLD = 0.3
WINDOW = 32

_BYTE_MARKS = {"Ġ": " ", "▁": " ", "Ċ": "\n", "ĉ": "\t", "<0x0A>": "\n"}


@dataclass(frozen=True)
class ActivationRecord:
    tokens: list[str]
    values: list[float]  # one per token

    @property
    def max_value(self) -> float:
        return max(self.values, default=0.0)

    @property
    def is_activating(self) -> bool:
        return self.max_value > 0.0

    def text(self) -> str:
        return detokenize(self.tokens)

    def marked_positions(self, threshold: float = MARK_THRESHOLD) -> list[int]:
        """Positions whose value is above `threshold` × this example's max (none if max ≤ 0)."""
        peak = self.max_value
        if peak <= 0:
            return []
        return [i for i, v in enumerate(self.values) if v > threshold * peak]


def token_text(token: str) -> str:
    for mark, replacement in _BYTE_MARKS.items():
        token = token.replace(mark, replacement)
    return token


def detokenize(tokens: Sequence[str]) -> str:
    return "".join(token_text(t) for t in tokens)


def records_from(items: Sequence[tuple[Sequence[str], Sequence[float]]]) -> list[ActivationRecord]:
    """Validate `(tokens, values)` pairs; `InvalidInput` says which one is malformed."""
    records = []
    for i, (tokens, values) in enumerate(items):
        if len(tokens) != len(values):
            raise InvalidInput(f"activation {i} has {len(tokens)} tokens but {len(values)} values")
        if not tokens:
            raise InvalidInput(f"activation {i} has no tokens")
        records.append(ActivationRecord(list(tokens), [float(v) for v in values]))
    return records


def split_examples(
    records: Sequence[ActivationRecord],
) -> tuple[list[ActivationRecord], list[ActivationRecord]]:
    """(activating, non-activating); raises when nothing activates: there is nothing to explain."""
    if not records:
        raise InvalidInput("no activations given")
    activating = [r for r in records if r.is_activating]
    if not activating:
        raise InvalidInput("none of the activations is above zero: nothing to explain or score")
    return activating, [r for r in records if not r.is_activating]


def window(record: ActivationRecord, size: int = WINDOW) -> ActivationRecord:
    """At most `size` tokens around the example's strongest token (most context before it)."""
    if len(record.tokens) <= size:
        return record
    peak = max(range(len(record.values)), key=lambda i: record.values[i])
    start = max(0, min(peak - size * 3 // 4, len(record.tokens) - size))
    return ActivationRecord(
        record.tokens[start : start + size], record.values[start : start + size]
    )


def format_marked(record: ActivationRecord, positions: Sequence[int]) -> str:
    """The example's text with the tokens at `positions` wrapped in << >> (runs merged)."""
    chosen = set(positions)
    parts: list[str] = []
    open_run = False
    for i, token in enumerate(record.tokens):
        text = token_text(token)
        if i in chosen and not open_run:
            # Keep the leading space outside the marks: "the <<cat>>", not "the<< cat>>".
            stripped = text.lstrip()
            parts.append(text[: len(text) - len(stripped)] + "<<" + stripped)
            open_run = True
        elif i in chosen:
            parts.append(text)
        else:
            if open_run:
                parts.append(">>")
                open_run = False
            parts.append(text)
    if open_run:
        parts.append(">>")
    return "".join(parts).strip()


def format_example(record: ActivationRecord, threshold: float = MARK_THRESHOLD) -> str:
    return format_marked(record, record.marked_positions(threshold))
