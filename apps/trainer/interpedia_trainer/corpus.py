"""Corpora: read texts and cut them into fixed-length token contexts.

A corpus is a folder of `.txt` files (one document each, read in name order), a `.jsonl`
file whose lines carry a `text` field, or (online) a Hugging Face dataset name with a
`text` column. Documents are tokenized without special tokens, joined with EOS, and cut
into contexts of `context_size` tokens; with `prepend_bos` each context starts with BOS
and holds `context_size - 1` corpus tokens (as SAELens does), so every context sees the
same position-0 token the model was trained with.
"""

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from interpedia_core import stopping
from interpedia_core.errors import InvalidInput

logger = logging.getLogger(__name__)


def read_texts(source: str | Path, *, max_documents: int | None = None) -> Iterator[str]:
    """Yield the documents of a corpus (see the module docstring for what a corpus is)."""
    path = Path(source)
    count = 0
    for text in _documents(path, str(source)):
        if not text.strip():
            continue
        yield text
        count += 1
        if max_documents is not None and count >= max_documents:
            return


def _documents(path: Path, source: str) -> Iterator[str]:
    if path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise InvalidInput(f"corpus folder {path} has no .txt files")
        for f in files:
            try:
                yield f.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise InvalidInput(f"cannot read {f}: {exc}") from exc
        return
    if path.suffix in (".jsonl", ".json") or path.exists():
        if not path.is_file():
            raise InvalidInput(f"corpus file {path} does not exist")
        try:
            with path.open(encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise InvalidInput(f"{path}:{n} is not JSON: {exc.msg}") from exc
                    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                        raise InvalidInput(f"{path}:{n} has no string 'text' field")
                    yield row["text"]
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read corpus {path}: {exc}") from exc
        return
    if "/" in source and not source.startswith((".", "/")):
        yield from _hf_dataset(source)
        return
    raise InvalidInput(f"corpus {source!r} is not a folder, a .jsonl file or a dataset name")


def _hf_dataset(name: str) -> Iterator[str]:
    """Online path: stream a Hugging Face dataset's `text` column."""
    try:
        from datasets import load_dataset

        dataset = load_dataset(name, split="train", streaming=True)
    except Exception as exc:
        raise InvalidInput(f"cannot load dataset {name!r}: {exc}") from exc
    for row in dataset:
        text = row.get("text") if isinstance(row, dict) else None
        if not isinstance(text, str):
            raise InvalidInput(f"dataset {name!r} has no 'text' column")
        yield text


def tokenize_corpus(
    source: str | Path,
    tokenizer: Any,
    *,
    context_size: int = 128,
    prepend_bos: bool = True,
    max_contexts: int | None = None,
    max_documents: int | None = None,
) -> torch.Tensor:
    """Fixed-length contexts [n_contexts, context_size] of token ids from a corpus.

    Raises `InvalidInput` if the corpus is empty, unreadable or shorter than one context.
    """
    texts = read_texts(source, max_documents=max_documents)
    return _contexts(texts, str(source), tokenizer, context_size, prepend_bos, max_contexts)


def training_contexts(
    source: str | Path,
    tokenizer: Any,
    *,
    context_size: int,
    prepend_bos: bool,
    max_contexts: int | None,
    n_eval_contexts: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) contexts of a corpus: the last `n_eval_contexts` (at most a tenth,
    at least one when there are two) are held out for a run's reconstruction metrics."""
    contexts = tokenize_corpus(
        source,
        tokenizer,
        context_size=context_size,
        prepend_bos=prepend_bos,
        max_contexts=max_contexts,
    )
    n = contexts.shape[0]
    n_eval = min(n_eval_contexts, max(n // 10, 1)) if n > 1 else 0
    return contexts[: n - n_eval], contexts[n - n_eval :]


def tail_contexts(
    source: str | Path,
    tokenizer: Any,
    *,
    n_contexts: int,
    context_size: int = 128,
    prepend_bos: bool = True,
) -> torch.Tensor:
    """The last `n_contexts` contexts [n, context_size] of a local corpus.

    A fixed evaluation set: training and dashboards read a corpus from its start, so
    its end is what they are least likely to have seen. Only the last documents are
    tokenized (those that hold enough tokens), in corpus order.
    """
    path = Path(source)
    if not path.exists():
        raise InvalidInput(f"corpus {source} is not a local folder or .jsonl file")
    texts = list(read_texts(path))
    body = context_size - 1 if prepend_bos else context_size
    first, tokens = len(texts), 0
    while first > 0 and tokens < n_contexts * body:
        first -= 1
        tokens += len(tokenizer(texts[first], add_special_tokens=False)["input_ids"]) + 1
    contexts = _contexts(iter(texts[first:]), str(source), tokenizer, context_size, prepend_bos)
    if contexts.shape[0] < n_contexts:
        raise InvalidInput(
            f"corpus {source} holds {contexts.shape[0]} contexts of {context_size} tokens, "
            f"fewer than the {n_contexts} the evaluation set needs"
        )
    return contexts[-n_contexts:]


def _contexts(
    texts: Iterator[str],
    source: str,
    tokenizer: Any,
    context_size: int,
    prepend_bos: bool,
    max_contexts: int | None = None,
) -> torch.Tensor:
    if context_size < 2:
        raise InvalidInput(f"context_size must be at least 2, got {context_size}")
    bos = tokenizer.bos_token_id
    if prepend_bos and bos is None:
        raise InvalidInput("the tokenizer has no BOS token; use prepend_bos=False")
    eos = tokenizer.eos_token_id
    body = context_size - 1 if prepend_bos else context_size
    contexts: list[torch.Tensor] = []
    pending: list[int] = []
    for text in texts:
        stopping.check()  # a whole corpus takes a while: a stop need not wait for it
        pending.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if eos is not None:
            pending.append(eos)
        while len(pending) >= body:
            chunk, pending = pending[:body], pending[body:]
            contexts.append(torch.tensor(([bos] if prepend_bos else []) + chunk))
            if max_contexts is not None and len(contexts) >= max_contexts:
                return torch.stack(contexts)
    if not contexts:
        raise InvalidInput(
            f"corpus {source} is empty or shorter than one context of {context_size} tokens"
        )
    return torch.stack(contexts)
