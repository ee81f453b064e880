"""Corpus → activations → SAE → dashboards / concepts on the tiny random model."""

import json

import pytest
import torch
from sae_lens import SAE
from typer.testing import CliRunner

from interpedia_core.errors import InvalidInput
from interpedia_trainer.activations import (
    cache_activations,
    stream_activations,
)
from interpedia_trainer.cli import commands
from interpedia_trainer.concepts import builtin_concepts, score_concepts
from interpedia_trainer.corpus import tokenize_corpus
from interpedia_trainer.model_runtime import HookedModel, tiny_hooked_model
from interpedia_trainer.pipeline import dashboards_from_corpus, load_sae, train_from_corpus
from interpedia_trainer.training import TrainingConfig

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def tiny() -> HookedModel:
    torch.set_flush_denormal(True)
    return tiny_hooked_model()


def _cfg(**changes) -> TrainingConfig:
    base = dict(
        d_in=64,
        hook_name=HOOK,
        d_sae=64,
        k=4,
        lr=3e-3,
        batch_size=128,
        total_tokens=128 * 12,
        context_size=32,
        log_every_steps=4,
        eval_every_steps=6,
    )
    return TrainingConfig(**{**base, **changes})


def test_train_from_corpus_writes_a_loadable_sae_and_resumes(tiny, tiny_corpus, tmp_path) -> None:
    seen: list[dict] = []
    out = tmp_path / "sae"
    result = train_from_corpus(
        _cfg(), tiny, tiny_corpus, out, cache_dir=tmp_path / "cache", on_metrics=seen.append
    )
    assert result.n_tokens == 128 * 12
    for name in ("cfg.json", "sae_weights.safetensors", "sparsity.safetensors", "training.png"):
        assert (out / name).is_file(), name
    final = result.final_metrics
    for key in (
        "eval/explained_variance",
        "eval/l0",
        "eval/ce_loss_recovered",
        "eval/ce_loss_clean",
        "eval/ce_loss_zero_ablated",
        "dead_fraction",
    ):
        assert key in final
    assert final["eval/l0"] == pytest.approx(4, abs=0.01)
    assert any("eval/mse" in row for row in seen)
    sae = SAE.load_from_disk(out)
    assert sae.cfg.metadata.hook_name == HOOK and sae.cfg.metadata.model_name == "tiny-random"
    # resume with a longer budget: starts from the final checkpoint's token count
    resumed = train_from_corpus(
        _cfg(total_tokens=128 * 16, checkpoint_every_steps=2),
        tiny,
        tiny_corpus,
        tmp_path / "sae2",
        cache_dir=tmp_path / "cache",
    )
    assert resumed.n_tokens == 128 * 16
    again = train_from_corpus(
        _cfg(total_tokens=128 * 20),
        tiny,
        tiny_corpus,
        tmp_path / "sae2",
        cache_dir=tmp_path / "cache",
    )
    assert again.n_tokens == 128 * 20 and again.n_steps == 20


def test_stream_and_cache_give_the_same_tokens(tiny, tiny_corpus, tmp_path) -> None:
    ctx = tokenize_corpus(tiny_corpus, tiny.tokenizer, context_size=32, max_contexts=12)
    streamed = torch.cat(list(stream_activations(tiny, HOOK, ctx, batch_size=31, loop=False)))
    cache = cache_activations(tiny, HOOK, ctx, tmp_path / "c", shard_tokens=100)
    cached = cache.load_all()
    real = int((~torch.isin(ctx, torch.tensor(tiny.special_token_ids))).sum())
    assert cache.n_tokens == real < 12 * 32 and len(cache.shards) > 1  # BOS/EOS dropped
    assert streamed.shape == (real // 31 * 31, 64)  # full batches only
    rows = {tuple(r) for r in cached.round(decimals=4).tolist()}
    assert all(tuple(r) in rows for r in streamed.round(decimals=4).tolist())
    assert cache_activations(tiny, HOOK, ctx, tmp_path / "c").shards == cache.shards  # reused


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        ("blocks.7.hook_resid_post", "has 2 layers"),
        ("blocks.0.hook_nope", "no hook named"),
        ("hook_embed_x", "not a per-layer hook"),
    ],
)
def test_bad_hook_fails_before_work(tiny, hook, message, tmp_path) -> None:
    with pytest.raises(InvalidInput, match=message):
        train_from_corpus(_cfg(hook_name=hook), tiny, tmp_path / "no-corpus", tmp_path / "o")


def test_corpus_shorter_than_a_batch(tiny, tmp_path) -> None:
    (tmp_path / "a.txt").write_text("a few words only " * 20)
    with pytest.raises(InvalidInput, match="fewer than one training batch"):
        train_from_corpus(_cfg(batch_size=4096, total_tokens=4096), tiny, tmp_path, tmp_path / "o")


def test_dashboards_and_concepts_on_a_trained_sae(tiny, tiny_corpus, tmp_path) -> None:
    out = tmp_path / "sae"
    train_from_corpus(_cfg(eval_every_steps=0), tiny, tiny_corpus, out)
    sae = load_sae(out)
    dashes = dashboards_from_corpus(
        tiny, sae, tiny_corpus, n_prompts=10, context_size=32, feature_range=(8, 24)
    )
    assert [d.index for d in dashes] == list(range(8, 24))
    fired = [d for d in dashes if d.max_activation > 0]
    assert fired
    for d in fired:
        assert d.top_examples[0].max_value == pytest.approx(d.max_activation)
        assert len(d.logit_pos_tokens) == 10 and sum(d.logit_hist_heights) == tiny.W_U.shape[1]
        assert len(d.top_examples[0].tokens) == 32
    results = score_concepts(
        lambda b: tiny.forward_to_hook(b, HOOK),
        sae,
        tiny.tokenizer,
        {"numbers": builtin_concepts()["numbers"]},
        ["plain words and more words " * 30],
        top_n=3,
        ignore_token_ids=tiny.special_token_ids,
    )
    scores = [f.score for f in results[0].features]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)


def test_cli_train_and_dashboards(tiny_corpus, tiny_train_flags, tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "sae"
    res = runner.invoke(
        commands,
        [
            "train",
            *tiny_train_flags,
            "--out",
            str(out),
            "--corpus",
            str(tiny_corpus),
            "--total-tokens",
            "512",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (out / "cfg.json").exists()
    res = runner.invoke(
        commands,
        [
            "dashboards",
            "--sae",
            str(out),
            "--out",
            str(tmp_path / "d.json"),
            "--model",
            "tiny-random",
            "--corpus",
            str(tiny_corpus),
            "--n-prompts",
            "4",
            "--context-size",
            "32",
            "--features",
            "0:5",
        ],
    )
    assert res.exit_code == 0, res.output
    assert len(json.loads((tmp_path / "d.json").read_text())) == 5
    res = runner.invoke(
        commands,
        [
            "train",
            "--out",
            str(out),
            "--model",
            "tiny-random",
            "--corpus",
            str(tiny_corpus),
            "--hook",
            HOOK,
            "--d-sae",
            "0",
        ],
    )
    assert isinstance(res.exception, InvalidInput)


@pytest.mark.parametrize(
    ("hook", "width"),
    [
        ("blocks.1.hook_resid_post", 64),  # d_model
        ("blocks.0.mlp.hook_post", 128),  # d_mlp
        ("blocks.1.attn.hook_z", 4 * 16),  # n_heads * d_head, heads concatenated
    ],
)
def test_hook_width_is_the_hooks_own(tiny, hook, width) -> None:
    assert tiny.hook_width(hook) == width
    with pytest.raises(InvalidInput, match=f"does not match the width {width}"):
        tiny.check_d_in(width + 1, hook)


def test_cli_train_defaults_d_in_to_the_hooks_width(
    tiny, tiny_corpus, tiny_train_flags, tmp_path
) -> None:
    """On mlp.hook_post (d_mlp 128, not d_model 64) the CLI's default d_in is 128 and the
    SAE trains and loads; a d_in of d_model is refused before any work."""
    flags = [f for f in tiny_train_flags if f != HOOK]  # the flag's value goes below
    flags[flags.index("--hook") + 1 : flags.index("--hook") + 1] = ["blocks.0.mlp.hook_post"]
    out = tmp_path / "mlp-sae"
    res = CliRunner().invoke(
        commands,
        ["train", *flags, "--out", str(out), "--corpus", str(tiny_corpus), "--total-tokens", "512"],
    )
    assert res.exit_code == 0, res.output
    assert json.loads((out / "cfg.json").read_text())["d_in"] == 128
    assert load_sae(out).cfg.d_in == 128
    with pytest.raises(InvalidInput, match="d_in 64 does not match the width 128"):
        train_from_corpus(_cfg(hook_name="blocks.0.mlp.hook_post"), tiny, tiny_corpus, tmp_path)
