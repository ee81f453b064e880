"""One end-to-end run on the real packaged model (SmolLM2-135M): slow, opt-in."""

from pathlib import Path

import pytest
import torch
from sae_lens import SAE

from interpedia_trainer.model_runtime import load_hooked_model
from interpedia_trainer.pipeline import dashboards_from_corpus, load_sae, train_from_corpus
from interpedia_trainer.training import TrainingConfig

pytestmark = pytest.mark.slow


def test_train_and_dashboards_on_smollm2(tmp_path: Path) -> None:
    torch.set_flush_denormal(True)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(
        "Mr. Speaker, the state of our Union is strong. We will build roads and schools, "
        "and we will keep our promise to every family in this great nation. " * 40
    )
    model = load_hooked_model()
    assert model.n_layers == 30 and model.d_model == 576
    cfg = TrainingConfig(
        d_in=576,
        hook_name="blocks.3.hook_resid_post",
        architecture="topk",
        d_sae=1152,
        k=16,
        batch_size=256,
        total_tokens=256 * 6,
        context_size=64,
        log_every_steps=2,
    )
    result = train_from_corpus(cfg, model, corpus, tmp_path / "sae", max_contexts=40)
    assert result.n_tokens == 256 * 6
    final = result.final_metrics
    # six steps train little; the CE numbers must still be sane and ordered
    assert final["eval/ce_loss_clean"] < final["eval/ce_loss_zero_ablated"]
    assert -1.0 < final["eval/ce_loss_recovered"] <= 1.5
    sae = SAE.load_from_disk(tmp_path / "sae")
    assert sae.cfg.metadata.model_name == model.model_id
    dashes = dashboards_from_corpus(
        model,
        load_sae(tmp_path / "sae"),
        corpus,
        n_prompts=4,
        context_size=64,
        feature_range=(0, 16),
    )
    assert len(dashes) == 16 and any(d.max_activation > 0 for d in dashes)
