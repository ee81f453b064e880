"""Prompts as the graph sees them: chat turns rendered and recovered, tokens counted.

Token positions must agree everywhere a graph is used: the graph's `ctx_idx`, a steering
request's positions and the token count checked against the limit. All of them come from
circuit-tracer's own `ensure_tokenized`, which puts a special token in front of the
prompt (attribution leaves that position out), so position 0 is never a prompt token.

Chat turns are rendered with the model's own chat template, the last turn left open for
the model to continue (an empty last assistant turn means: the assistant speaks next).
To read turns back out of a rendered prompt, each role's header and footer are learned by
rendering the template around marker strings, so no model family is special-cased.
"""

from dataclasses import dataclass
from functools import cache
from typing import Any

import torch

from interpedia_core.errors import InvalidInput

MARK = "\u0000INTERPEDIA\u0000"
ROLES = ("system", "user", "assistant")


def render_messages(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    if getattr(tokenizer, "chat_template", None) is None:
        raise InvalidInput("this model has no chat template: send a plain prompt")
    if any(m["role"] not in ROLES for m in messages):
        raise InvalidInput(f"chat roles are {', '.join(ROLES)}")
    last = messages[-1]
    if last["role"] == "assistant" and not last["content"].strip():
        return tokenizer.apply_chat_template(
            messages[:-1], tokenize=False, add_generation_prompt=True
        )
    if last["role"] == "assistant":
        return tokenizer.apply_chat_template(messages, tokenize=False, continue_final_message=True)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def resolve_prompt(tokenizer: Any, prompt: str, messages: list[dict[str, str]] | None) -> str:
    """The text to trace: the chat turns rendered, else the prompt; never empty."""
    text = render_messages(tokenizer, messages) if messages else prompt
    if not text.strip():
        raise InvalidInput("the prompt is empty: send a prompt or chat messages")
    return text


def prompt_ids(tokenizer: Any, text: str, model_name: str = "") -> torch.Tensor:
    """[n_tokens] ids exactly as circuit-tracer attributes them (special token first)."""
    from circuit_tracer.replacement_model.common import ensure_tokenized

    return ensure_tokenized(text, tokenizer, "cpu", model_name)


def checked_prompt_ids(tokenizer: Any, text: str, max_tokens: int) -> torch.Tensor:
    ids = prompt_ids(tokenizer, text)
    # The leading special token is the tracer's, not the user's: it does not count.
    if len(ids) - 1 > max_tokens:
        raise InvalidInput(
            f"the prompt has {len(ids) - 1} tokens; graphs are traced for at most {max_tokens}"
        )
    return ids


@dataclass(frozen=True)
class TurnDelimiters:
    header: str
    footer: str


def _render_marked(tokenizer: Any, roles: tuple[str, ...]) -> list[str] | None:
    try:
        text = tokenizer.apply_chat_template(
            [{"role": role, "content": MARK} for role in roles], tokenize=False
        )
    except Exception:  # the template may refuse a role order: that role is then unknown
        return None
    chunks = text.split(MARK)
    return chunks if len(chunks) == len(roles) + 1 else None


@cache
def _delimiters_of_template(tokenizer: Any) -> dict[str, TurnDelimiters]:
    """Each role's header and footer, from renders of [user, role] with marker contents."""
    alone = _render_marked(tokenizer, ("user",))
    if alone is None:
        return {}
    user_footer = alone[1]
    found = {}
    for role in ROLES:
        pair = _render_marked(tokenizer, ("user", role))
        if pair is None or not pair[1].startswith(user_footer):
            continue
        found[role] = TurnDelimiters(pair[1][len(user_footer) :], pair[2])
    return found


def parse_chat(tokenizer: Any, prompt: str) -> list[dict[str, str]] | None:
    """The chat turns a rendered prompt holds; None for a plain prompt."""
    if getattr(tokenizer, "chat_template", None) is None:
        return None
    delimiters = _delimiters_of_template(tokenizer)
    marks: list[tuple[int, str]] = []  # every occurrence of every role's header
    for role, turn in delimiters.items():
        at = prompt.find(turn.header) if turn.header else -1
        while at >= 0:
            marks.append((at, role))
            at = prompt.find(turn.header, at + len(turn.header))
    if not marks:
        return None
    marks.sort(key=lambda m: (m[0], -len(delimiters[m[1]].header)))  # longer header wins a tie
    chosen: list[tuple[int, str]] = []
    end = -1
    for at, role in marks:
        if at >= end:  # a header inside an earlier header is part of it
            chosen.append((at, role))
            end = at + len(delimiters[role].header)
    turns = []
    for i, (at, role) in enumerate(chosen):
        stop = chosen[i + 1][0] if i + 1 < len(chosen) else len(prompt)
        content = prompt[at + len(delimiters[role].header) : stop]
        footer = delimiters[role].footer
        if footer and content.endswith(footer):
            content = content[: -len(footer)]
        turns.append({"role": role, "content": content})
    return turns


# Attribution leaves out the special token circuit-tracer puts first: steering it is refused.
UNSTEERABLE_POSITIONS = [0]
