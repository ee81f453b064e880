"""Corpus reading and tokenization, and the errors for bad corpora."""

import json
from pathlib import Path

import pytest

from interpedia_core.errors import InvalidInput
from interpedia_trainer.corpus import read_texts, tokenize_corpus


class FakeTokenizer:
    """Whitespace tokenizer: ids are word lengths + 10; BOS 1, EOS 2."""

    bos_token_id = 1
    eos_token_id = 2
    pad_token_id = None

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": [len(w) + 10 for w in text.split()]}


def test_folder_of_txt_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("second doc")
    (tmp_path / "a.txt").write_text("first doc here")
    (tmp_path / "c.txt").write_text("   ")
    assert list(read_texts(tmp_path)) == ["first doc here", "second doc"]


def test_jsonl_text_field(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in ["one two", "three"]) + "\n")
    assert list(read_texts(path)) == ["one two", "three"]


def test_contexts_have_bos_and_fixed_length(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(" ".join(["word"] * 50))
    ctx = tokenize_corpus(tmp_path, FakeTokenizer(), context_size=8)
    assert ctx.shape == (7, 8)  # 51 tokens (50 words + EOS) -> 7 contexts of 7 + BOS
    assert (ctx[:, 0] == 1).all() and (ctx[:, 1:] == 14).all()
    no_bos = tokenize_corpus(tmp_path, FakeTokenizer(), context_size=8, prepend_bos=False)
    assert no_bos.shape == (6, 8) and (no_bos[0] == 14).all()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p / "missing.jsonl", "does not exist"),
        (lambda p: p, "no .txt files"),
        (lambda p: (p / "x.jsonl").write_text("not json\n") and p / "x.jsonl", "is not JSON"),
        (lambda p: (p / "y.jsonl").write_text('{"body": 1}\n') and p / "y.jsonl", "no string"),
        (lambda p: (p / "s.txt").write_text("too short") and p, "shorter than one context"),
    ],
)
def test_bad_corpus_is_invalid_input(tmp_path: Path, setup, message: str) -> None:
    source = setup(tmp_path)
    with pytest.raises(InvalidInput, match=message):
        tokenize_corpus(source, FakeTokenizer(), context_size=32)
