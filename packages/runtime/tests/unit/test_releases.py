"""SAELens `release:sae_id` sources, offline.

A local Hugging Face cache (the layout `hf_hub_download` reads: `models--{org}--{name}/`
with `refs/main` and a snapshot) stands in for the hub, so SAELens resolves and loads a
release exactly as it would online. SAELens' bundled directory resolves some releases'
configs without any download (Gemma Scope): those check ids that do not start with `blocks.`.
"""

import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

from interpedia_core.errors import ConfigurationError
from interpedia_runtime.models import LoadedModel, tiny_random_model
from interpedia_runtime.saes import SaeRegistry, encode_tokens, parse_source, save_random_sae

REPO = "local-test/saes"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def tiny() -> LoadedModel:
    return tiny_random_model()


@pytest.fixture
def local_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Hugging Face cache holding REPO, with two SAEs named like Gemma Scope's."""
    repo = tmp_path / "hub" / f"models--{REPO.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    for layer in (0, 1):
        folder = save_random_sae(
            tmp_path / f"l{layer}",
            d_in=64,
            d_sae=48,
            hook_name=f"blocks.{layer}.hook_resid_post",
            seed=layer,
        )
        shutil.copytree(folder, snapshot / f"layer_{layer}" / "width_48")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "hub"


def test_a_repo_release_resolves_and_loads_from_the_local_cache(
    tiny: LoadedModel, local_hub: Path
) -> None:
    registry = SaeRegistry(tiny)
    specs = [registry.add_source(f"{REPO}:layer_{layer}/width_48", "res-rel") for layer in (0, 1)]
    assert [(s.source_id, s.layer, s.hook_name) for s in specs] == [
        ("0-res-rel", 0, "blocks.0.hook_resid_post"),
        ("1-res-rel", 1, "blocks.1.hook_resid_post"),
    ]
    sae = registry.get("1-res-rel")  # the weights, from the cache
    assert sae.d_sae == 48 and sae.spec.release == REPO
    tokens = torch.tensor([tiny.tokenize("The cat sat")])
    features = encode_tokens(tiny, [sae], tokens)["1-res-rel"]
    resid = tiny.run_hooks(tokens, ["blocks.1.hook_resid_post"])["blocks.1.hook_resid_post"]
    assert torch.allclose(features, sae.sae.encode(resid), atol=1e-5)


def test_bundled_release_ids_name_their_layer_without_a_download() -> None:
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    release = "gemma-scope-2b-pt-res"
    entry = get_pretrained_saes_directory()[release]
    # SAEs Neuronpedia has no id for: the id comes from the layer the config names.
    unnamed = [i for i in entry.saes_map if not entry.neuronpedia_id.get(i)]
    layer_3 = next(i for i in unnamed if i.startswith("layer_3/width_16k/"))
    layer_5 = next(i for i in unnamed if i.startswith("layer_5/width_16k/"))
    three = parse_source(f"{release}:{layer_3}", "gemmascope-res")
    five = parse_source(f"{release}:{layer_5}", "gemmascope-res")
    assert (three.layer, three.hook_name, three.source_id) == (
        3,
        "blocks.3.hook_resid_post",
        "3-gemmascope-res",
    )
    assert (five.layer, five.source_id) == (5, "5-gemmascope-res")
    canonical = parse_source(
        "gemma-scope-2b-pt-res-canonical:layer_5/width_16k/canonical", "gemmascope-res"
    )
    assert (canonical.layer, canonical.source_id) == (5, "5-gemmascope-res-16k")  # Neuronpedia's


def test_two_saes_of_one_layer_in_one_set_are_refused_clearly(
    tiny: LoadedModel, local_hub: Path
) -> None:
    registry = SaeRegistry(tiny)
    registry.add_source(f"{REPO}:layer_1/width_48", "res-rel")
    with pytest.raises(ConfigurationError, match="both named 1-res-rel"):
        registry.add_source(f"{REPO}:layer_1/width_48", "res-rel")
    with pytest.raises(ConfigurationError, match="unknown SAELens release"):
        parse_source("no-such-release:layer_1", "res-rel")
    with pytest.raises(ConfigurationError, match="must be in the Hugging Face cache"):
        parse_source(f"{REPO}:layer_9/width_48", "res-rel")
