"""Explainers and scorers on hand-built examples, with the real local embedding model and the
real `openai` SDK talking HTTP to a fake OpenAI-compatible server."""

import numpy as np
import pytest

from interpedia_autointerp.embeddings import LOCAL_DIMENSIONS, LocalEmbedder
from interpedia_autointerp.examples import WINDOW, ActivationRecord
from interpedia_autointerp.explain import (
    OFFLINE_TYPE_NAME,
    llm_explanation,
    offline_explanation,
    parse_explanation,
)
from interpedia_autointerp.llm import LLMClient, LLMConfig
from interpedia_autointerp.scoring import (
    detection_score,
    embedding_contrast,
    embedding_score,
    fuzzing_score,
    simulation_score,
)
from interpedia_core.errors import InvalidInput, UpstreamError


async def test_local_embeddings_are_unit_and_semantic(local_embedder: LocalEmbedder) -> None:
    vectors = await local_embedder.embed(["a cat", "a kitten", "income tax"])
    assert vectors.shape == (3, LOCAL_DIMENSIONS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_offline_explainer_names_the_feature(
    cat_records: list[ActivationRecord], other_records: list[ActivationRecord]
) -> None:
    result = offline_explanation([*cat_records, *other_records], logit_tokens=["Ġmeow", "Ġpurr"])
    assert result.type_name == OFFLINE_TYPE_NAME
    assert '"cat"' in result.description and '"kitten"' in result.description
    assert "meow" not in result.description  # the examples never say it: left out
    assert len(result.description) < 200


def test_offline_explainer_names_whole_words_and_drops_fragments() -> None:
    # SmolLM2's tokens of "a real pleasure to recollect the conducive simplicity".
    tokens = ["Ġa", "Ġreal", "Ġpleasure", "Ġto", "Ġrecol", "lect", "Ġthe", "Ġconducive", "."]
    fires = [0.0, 0.0, 0.0, 0.0, 2.0, 3.0, 0.0, 0.0, 0.0]
    quiet = ActivationRecord(["Ġthe", "Ġday", "Ġwe", "Ġrecall", "."], [0.0] * 5)
    result = offline_explanation(
        [ActivationRecord(tokens, fires), quiet],
        # sub-word pieces, a common word, a word the examples never contain, then one they do
        logit_tokens=["ducive", "plicity", "Ġthe", "Ġmemories", "Ġrecall"],
    )
    assert result.description == 'the word "recollect", before "recall"'
    assert result.type_name == OFFLINE_TYPE_NAME
    newline = ActivationRecord(["Ġend", "Ċ", "ĠNext"], [0.0, 1.0, 0.0])
    assert offline_explanation([newline]).description == "line breaks"


def test_offline_explainer_refuses_nothing_to_explain() -> None:
    with pytest.raises(InvalidInput, match="no activations"):
        offline_explanation([])
    with pytest.raises(InvalidInput, match="above zero"):
        offline_explanation([ActivationRecord(["a"], [0.0])])


async def test_offline_explanation_scores_clearly_above_random(
    local_embedder: LocalEmbedder,
    cat_records: list[ActivationRecord],
    other_records: list[ActivationRecord],
) -> None:
    records = [*cat_records, *other_records]
    offline = offline_explanation(records).description
    good = await embedding_score(local_embedder, offline, records)
    random_ones = [
        "numbers in financial tables",
        "verbs in the past tense",
        "programming keywords in Python code",
        "the word 'the' at the start of sentences",
        "dates and times of day",
    ]
    bad = [(await embedding_score(local_embedder, r, records)).value for r in random_ones]
    assert good.value >= 0.9
    # A random explanation can get lucky on 16 examples; on average it is near chance.
    assert good.value > max(bad)
    assert good.value > sum(bad) / len(bad) + 0.2
    assert len(good.breakdown) == len(records)
    assert good.details["contrast"] == "given"


async def test_embedding_score_without_negatives_uses_contrast(
    local_embedder: LocalEmbedder, cat_records: list[ActivationRecord]
) -> None:
    result = await embedding_score(local_embedder, "cats and kittens", cat_records)
    assert result.details["contrast"] == "marked-tokens-removed"
    assert result.value > 0.8
    assert {b.distance for b in result.breakdown if not b.activating} == {-1}


async def test_length_sorted_batches_embed_each_text_as_alone(
    local_embedder: LocalEmbedder, cat_records: list[ActivationRecord]
) -> None:
    # The embedder sorts a call's texts by length to pad less; each row must still be the
    # text's own vector, in the caller's order, as if it were embedded by itself.
    texts = [r.text() for r in cat_records] + ["cats", "a much longer sentence about cats"]
    texts = texts[::-1]
    together = await local_embedder.embed(texts)
    alone = np.concatenate([await local_embedder.embed([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


async def test_embedding_contrast_is_what_the_scorer_embeds(
    local_embedder: LocalEmbedder, cat_records: list[ActivationRecord]
) -> None:
    contrast = embedding_contrast(cat_records)
    result = await embedding_score(local_embedder, "cats and kittens", cat_records)
    assert [b.text for b in result.breakdown] == contrast.activating + contrast.non_activating
    assert contrast.synthetic
    assert all("cat" not in t.lower().split() for t in contrast.non_activating)


def test_embedding_contrast_sees_the_window_around_the_peak() -> None:
    """Like every other scorer: a long example is cut to WINDOW tokens around its peak, so
    the removed token is a real part of what the contrast compares."""
    tokens = [" filler"] * 100 + [" cat"] + [" tail"] * 27
    values = [0.0] * 100 + [3.0] + [0.0] * 27
    contrast = embedding_contrast([ActivationRecord(tokens, values)])
    (shown,) = contrast.activating
    assert len(shown.split()) == WINDOW and "cat" in shown
    assert contrast.non_activating == [shown.replace(" cat", "")]


async def test_embedding_score_refuses_empty_explanation(
    local_embedder: LocalEmbedder, cat_records: list[ActivationRecord]
) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        await embedding_score(local_embedder, "  ", cat_records)


def test_parse_explanation() -> None:
    assert parse_explanation('Looks like felines.\nExplanation: "cats and kittens".') == (
        "cats and kittens"
    )
    assert parse_explanation("mentions of cats") == "mentions of cats"
    with pytest.raises(UpstreamError):
        parse_explanation("line one\nline two")


async def test_llm_explainer_through_openai_sdk(fake_llm, cat_records) -> None:
    fake_llm.reply = lambda messages: "The marked words are felines.\nExplanation: domestic cats"
    client = LLMClient(LLMConfig(model="fake-model", base_url=fake_llm.url, max_retries=0))
    result = await llm_explanation(client, cat_records, logit_tokens=["Ġmeow"])
    assert result.description == "domestic cats"
    assert result.explanation_model_name == "fake-model"
    prompt = fake_llm.requests[0]["messages"][1]["content"]
    assert "<<cat>>" in prompt and "meow" in prompt
    assert fake_llm.requests[0]["model"] == "fake-model"


async def test_llm_errors_become_upstream_errors(fake_llm, cat_records) -> None:
    client = LLMClient(LLMConfig(model="m", base_url=fake_llm.url, max_retries=0))
    fake_llm.status = 500
    with pytest.raises(UpstreamError, match="500"):
        await llm_explanation(client, cat_records)
    fake_llm.status = 200
    fake_llm.raw_body = b"this is not json"
    with pytest.raises(UpstreamError):
        await llm_explanation(client, cat_records)
    fake_llm.raw_body = None
    fake_llm.reply = lambda messages: "   "
    with pytest.raises(UpstreamError, match="empty"):
        await llm_explanation(client, cat_records)
    unreachable = LLMClient(LLMConfig(model="m", base_url="http://127.0.0.1:9/v1", max_retries=0))
    with pytest.raises(UpstreamError, match="cannot reach"):
        await llm_explanation(unreachable, cat_records)


def _oracle(messages) -> str:
    """A judge that says 1 exactly for examples mentioning cats (or marking a cat word)."""
    content = messages[-1]["content"]
    answers = []
    for line in content.splitlines():
        if line.startswith("Example "):
            text = line.lower()
            if "<<" in text:
                hit = any(f"<<{w}" in text for w in ("cat", "kitten"))
            else:
                hit = "cat" in text or "kitten" in text
            answers.append(int(hit))
    return str(answers)


async def test_detection_and_fuzzing_with_a_perfect_judge(
    fake_llm, cat_records, other_records
) -> None:
    fake_llm.reply = _oracle
    client = LLMClient(LLMConfig(model="judge", base_url=fake_llm.url, max_retries=0))
    records = [*cat_records, *other_records]
    detection = await detection_score(client, "cats", records)
    assert detection.value == pytest.approx(1.0)
    assert detection.details["f1"] == pytest.approx(1.0)
    assert len(fake_llm.requests) == 4  # 16 examples, 5 at a time
    fuzz = await fuzzing_score(client, "cats", records)
    assert fuzz.value == pytest.approx(1.0)
    assert sum(b.ground_truth for b in fuzz.breakdown) == len(cat_records)


async def test_detection_with_a_judge_that_always_says_yes(fake_llm, cat_records, other_records):
    fake_llm.reply = lambda messages: str([1] * messages[-1]["content"].count("Example "))
    client = LLMClient(LLMConfig(model="judge", base_url=fake_llm.url, max_retries=0))
    result = await detection_score(client, "cats", [*cat_records, *other_records])
    assert result.value == pytest.approx(0.5)
    assert result.details["recall"] == 1.0


async def test_simulation_correlates_predictions_with_activations(fake_llm, cat_records) -> None:
    def simulate(messages) -> str:
        lines = [x for x in messages[-1]["content"].splitlines() if x[:1].isdigit()]
        return str([10 if any(w in x.lower() for w in ("cat", "kitten")) else 0 for x in lines])

    fake_llm.reply = simulate
    client = LLMClient(LLMConfig(model="sim", base_url=fake_llm.url, max_retries=0))
    result = await simulation_score(client, "cats", cat_records)
    assert result.value > 0.9
    fake_llm.reply = lambda messages: "[1, 2]"
    with pytest.raises(UpstreamError, match="list of"):
        await simulation_score(client, "cats", cat_records)


async def test_openai_embedder_through_the_sdk(fake_llm) -> None:
    import openai

    from interpedia_autointerp.embeddings import OPENAI_DIMENSIONS, OpenAIEmbedder

    client = openai.AsyncOpenAI(base_url=fake_llm.url, api_key="k", max_retries=0)
    embedder = OpenAIEmbedder(client)
    vectors = await embedder.embed(["a", "b"])
    assert vectors.shape == (2, OPENAI_DIMENSIONS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert fake_llm.requests[0]["model"] == "text-embedding-3-large"
    assert fake_llm.requests[0]["dimensions"] == 256
    assert embedder.name == "openai/text-embedding-3-large@256"  # the name the database seeds
    fake_llm.status = 500
    with pytest.raises(UpstreamError, match="OpenAI embeddings failed"):
        await embedder.embed(["c"])
