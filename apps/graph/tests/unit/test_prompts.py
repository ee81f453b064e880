"""Prompts: chat turns rendered and read back, tokens counted as circuit-tracer counts them."""

import pytest

from interpedia_core.errors import InvalidInput
from interpedia_graph import prompts
from interpedia_graph.replacement import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("smollm2-135m")


def test_chat_turns_render_with_the_template_and_parse_back(tokenizer) -> None:
    messages = [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": ""},
    ]
    rendered = prompts.render_messages(tokenizer, messages)
    assert rendered.endswith("<|im_start|>assistant\n")  # left open for the model
    assert prompts.parse_chat(tokenizer, rendered) == messages
    continued = prompts.render_messages(
        tokenizer, [*messages[:2], {"role": "assistant", "content": "Pa"}]
    )
    assert continued.endswith("<|im_start|>assistant\nPa")
    assert prompts.parse_chat(tokenizer, "The capital of France is") is None


def test_token_positions_are_circuit_tracers(tokenizer) -> None:
    ids = prompts.prompt_ids(tokenizer, "The capital of France is")
    assert ids.tolist()[0] == tokenizer.bos_token_id  # the token attribution leaves out
    assert len(ids) == 6
    assert prompts.checked_prompt_ids(tokenizer, "The capital of France is", 5).shape == (6,)
    with pytest.raises(InvalidInput, match="has 5 tokens; graphs are traced for at most 4"):
        prompts.checked_prompt_ids(tokenizer, "The capital of France is", 4)


def test_an_empty_prompt_or_unknown_role_is_refused(tokenizer) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        prompts.resolve_prompt(tokenizer, "   ", None)
    with pytest.raises(InvalidInput, match="chat roles"):
        prompts.resolve_prompt(tokenizer, "", [{"role": "wizard", "content": "hi"}])
