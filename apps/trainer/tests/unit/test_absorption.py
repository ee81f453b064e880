"""First-letter absorption flags a constructed absorbing SAE and not a clean one.

The constructed case: 26 orthonormal letter directions and one orthonormal direction per
word; a word's activation is 2 × its letter's direction plus its own. The clean SAE has a
latent per letter (fires on every word of it) and one per word. The absorbing SAE is the
same, except that for half the words of 13 letters the word's latent also writes the
letter direction and the letter latent's encoder is made to stay silent on that word:
exactly the pattern SAE-Bench's metric looks for.
"""

import math

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata

from interpedia_trainer.absorption import (
    LETTERS,
    AbsorptionConfig,
    ProbeData,
    absorption_scores,
    spelling_prompts,
    spelling_words,
)
from interpedia_trainer.model_runtime import tiny_hooked_model

WORDS_PER_LETTER = 24
ABSORBING_LETTERS = 13
# The sizes are small, so the probes need fewer epochs than SAE-Bench's defaults.
CONFIG = AbsorptionConfig(probe_num_epochs=20, k_sparse_probe_num_epochs=50, max_k_value=4)


def _constructed(absorbing: bool, seed: int = 0) -> tuple[StandardSAE, ProbeData, ProbeData]:
    g = torch.Generator().manual_seed(seed)
    n_words = len(LETTERS) * WORDS_PER_LETTER
    d = len(LETTERS) + n_words
    basis, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    letter_dirs, word_dirs = basis[: len(LETTERS)], basis[len(LETTERS) :]
    letters = torch.arange(len(LETTERS)).repeat_interleave(WORDS_PER_LETTER)
    acts = 2 * letter_dirs[letters] + word_dirs + 0.02 * torch.randn(n_words, d, generator=g)
    absorbed = torch.zeros(n_words, dtype=torch.bool)
    if absorbing:
        for letter in range(ABSORBING_LETTERS):
            words = torch.nonzero(letters == letter)[:, 0]
            absorbed[words[: len(words) // 2]] = True

    d_sae = len(LETTERS) + n_words
    w_enc, b_enc, w_dec = torch.zeros(d, d_sae), torch.zeros(d_sae), torch.zeros(d_sae, d)
    w_enc[:, : len(LETTERS)] = letter_dirs.T
    b_enc[: len(LETTERS)] = -1.0
    w_dec[: len(LETTERS)] = letter_dirs
    scale = 2 * math.sqrt(5)  # the absorbing latent's activation is √5: it rebuilds 2·L + w
    for j in range(n_words):
        latent = len(LETTERS) + j
        if absorbed[j]:
            w_enc[:, latent] = scale * word_dirs[j]
            b_enc[latent] = -0.5 * scale
            w_dec[latent] = (word_dirs[j] + 2 * letter_dirs[letters[j]]) / math.sqrt(5)
            w_enc[:, letters[j]] -= 3 * word_dirs[j]  # the letter latent stays silent on it
        else:
            w_enc[:, latent] = word_dirs[j]
            b_enc[latent] = -0.5
            w_dec[latent] = word_dirs[j]
    sae = StandardSAE(
        StandardSAEConfig(d_in=d, d_sae=d_sae, metadata=SAEMetadata(hook_name="blocks.0.x"))
    )
    with torch.no_grad():
        sae.W_enc.copy_(w_enc)
        sae.b_enc.copy_(b_enc)
        sae.W_dec.copy_(w_dec)
        sae.b_dec.zero_()
    order = torch.randperm(n_words, generator=g)
    cut = int(0.8 * n_words)
    train, test = order[:cut], order[cut:]
    return sae, ProbeData(acts[train], letters[train]), ProbeData(acts[test], letters[test])


@pytest.mark.parametrize("absorbing", [False, True])
def test_absorption_flags_the_absorbing_sae_only(absorbing: bool) -> None:
    torch.manual_seed(0)
    sae, train, test = _constructed(absorbing)
    scores = absorption_scores(sae, train, test, CONFIG)
    metrics = scores.mean_metrics()
    # The ground-truth probe finds every letter, and each letter's main latent is its own.
    assert len(scores.letters) == len(LETTERS)
    assert all(r.split_features == [LETTERS.index(r.first_letter)] for r in scores.letters)
    if not absorbing:
        assert metrics["mean_absorption_fraction_score"] == 0.0
        assert metrics["mean_full_absorption_score"] == 0.0
        return
    # About half the test words of half the letters are absorbed: a mean near 0.25.
    assert 0.15 < metrics["mean_absorption_fraction_score"] < 0.35, metrics
    assert 0.15 < metrics["mean_full_absorption_score"] < 0.35, metrics
    by_letter = {r.first_letter: r for r in scores.letters}
    assert all(by_letter[c].mean_absorption_fraction == 0.0 for c in LETTERS[ABSORBING_LETTERS:])
    assert sum(by_letter[c].num_full_absorption for c in LETTERS[:ABSORBING_LETTERS]) > 0


def test_spelling_prompts_put_every_word_at_one_position() -> None:
    tokenizer = tiny_hooked_model().tokenizer
    words = spelling_words(tokenizer, max_words=200, seed=1)
    assert len(words) == 200
    for word in words:
        bare = word.text.removeprefix(" ")
        assert bare.isalpha() and LETTERS[word.letter] == bare[0].lower()
    prompts = spelling_prompts(tokenizer, words[:20], words[20:], AbsorptionConfig(), seed=3)
    assert prompts.tokens.shape[0] == 20
    assert prompts.tokens[:, prompts.position].tolist() == [w.token_id for w in words[:20]]
    text = tokenizer.decode(prompts.tokens[0])
    assert text.count("has the first letter:") == AbsorptionConfig().icl_examples + 1
    assert text.endswith(words[0].text + " has the first letter:")
