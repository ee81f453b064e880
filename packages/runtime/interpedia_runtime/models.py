"""Loading language models by Interpedia id and wrapping them with TransformerLens.

A model id resolves through `MODEL_REGISTRY` (the packaged `smollm2-135m`, or well-known
TransformerLens names such as `gpt2-small`), else it is taken as a local Hugging Face folder
when such a folder exists, else as a Hugging Face hub id (online only).

`LoadedModel` holds two views of the same weights:
- `bridge`: a TransformerLens `TransformerBridge` with the hook names users know
  (`blocks.{L}.hook_resid_pre|post`, `blocks.{L}.mlp.hook_post`, `blocks.{L}.attn.hook_z`),
  used for activations (`run_with_cache(..., stop_at_layer=L + 1)`);
- `hf_model`: a plain Hugging Face model (not rewired by the bridge, which wraps modules in
  place), used for generation where it is measurably faster on CPU.
"""

import copy
import itertools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from interpedia_core.errors import ConfigurationError, NotFound

logger = logging.getLogger(__name__)

PACKAGED_MODEL_ID = "smollm2-135m"
# A random 2-layer model with SmolLM2's tokenizer (tests): `load_model("tiny-random")`.
TINY_MODEL_ID = "tiny-random"


@dataclass(frozen=True)
class ModelSpec:
    """How to load one Interpedia model id."""

    model_id: str
    hf_id: str
    packaged: bool = False
    display_name: str = ""
    instruct: bool = False


MODEL_REGISTRY: dict[str, ModelSpec] = {
    spec.model_id: spec
    for spec in (
        ModelSpec(
            PACKAGED_MODEL_ID,
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            packaged=True,
            display_name="SmolLM2 135M Instruct",
            instruct=True,
        ),
        ModelSpec("gpt2-small", "gpt2", display_name="GPT-2 Small"),
        ModelSpec("gpt2", "gpt2", display_name="GPT-2 Small"),
        ModelSpec("gpt2-medium", "gpt2-medium", display_name="GPT-2 Medium"),
        ModelSpec("pythia-70m-deduped", "EleutherAI/pythia-70m-deduped", display_name="Pythia 70M"),
        ModelSpec("gemma-2-2b", "google/gemma-2-2b", display_name="Gemma 2 2B"),
        ModelSpec(
            "gemma-2-2b-it", "google/gemma-2-2b-it", display_name="Gemma 2 2B IT", instruct=True
        ),
    )
}

_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.")


def resolve_model(model_id: str) -> ModelSpec:
    """Map an Interpedia model id (or HF id, or local folder) to how to load it."""
    if model_id in MODEL_REGISTRY:
        return MODEL_REGISTRY[model_id]
    for spec in MODEL_REGISTRY.values():
        if spec.hf_id == model_id:
            return spec
    if Path(model_id).is_dir():
        return ModelSpec(model_id=model_id, hf_id=str(Path(model_id).resolve()))
    if "/" in model_id or model_id.replace("-", "").replace("_", "").isalnum():
        return ModelSpec(model_id=model_id, hf_id=model_id)
    raise NotFound(f"unknown model {model_id!r}")


def available_offline(model_id: str) -> bool:
    """Whether `model_id` loads without the hub: the tiny test model, a packaged model, a
    local folder, or a model already in the Hugging Face cache."""
    if model_id == TINY_MODEL_ID:
        return True
    try:
        spec = resolve_model(model_id)
        if spec.packaged or Path(spec.hf_id).is_dir():
            return True
    except (NotFound, OSError):  # OSError: not a possible path (a name too long)
        return False
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(spec.hf_id, "config.json"), str)
    except ValueError:  # not a valid repo id (HFValidationError)
        return False


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float16": torch.float16,
        "fp16": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    if dtype not in table:
        raise ConfigurationError(f"unknown dtype {dtype!r}; use one of {sorted(table)}")
    return table[dtype]


def resolve_device(device: str | None) -> str:
    """`auto`/None → CUDA when present, else CPU."""
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


# Hooks whose activations are [batch, n_heads, query, key] rather than per token.
PATTERN_HOOKS = ("attn.hook_pattern", "attn.hook_attn_scores")


def layer_of_hook(hook_name: str) -> int | None:
    """The block index a hook name lives in (`blocks.6.hook_resid_post` → 6), or None."""
    match = _BLOCK_RE.match(hook_name)
    return int(match.group(1)) if match else None


@dataclass
class LoadedModel:
    """A language model ready for hooks, activations and generation."""

    model_id: str
    hf_id: str
    bridge: Any  # transformer_lens.model_bridge.TransformerBridge
    hf_model: Any  # transformers.PreTrainedModel, plain (not bridged)
    tokenizer: Any
    n_layers: int
    d_model: int
    d_vocab: int
    d_mlp: int
    n_heads: int
    d_head: int
    device: str
    dtype: torch.dtype
    prepend_bos: bool = True
    instruct: bool = False
    torch_threads: int = 0  # CPU threads per worker thread; 0: torch's default
    extra: dict[str, Any] = field(default_factory=dict)
    _token_string_cache: dict[int, str] = field(default_factory=dict, repr=False)

    def use_torch_threads(self) -> None:
        """Apply `torch_threads` here: torch sets its thread count per OS thread, so every
        worker thread that runs the model calls this first."""
        if self.torch_threads > 0 and torch.get_num_threads() != self.torch_threads:
            torch.set_num_threads(self.torch_threads)

    # -- tokens -----------------------------------------------------------------
    @property
    def bos_token_id(self) -> int | None:
        return self.tokenizer.bos_token_id

    def tokenize(self, text: str, prepend_bos: bool | None = None) -> list[int]:
        """Token ids as TransformerLens would feed them (BOS prepended unless told not to)."""
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        bos = self.prepend_bos if prepend_bos is None else prepend_bos
        if bos and self.bos_token_id is not None and (not ids or ids[0] != self.bos_token_id):
            ids = [self.bos_token_id, *ids]
        return ids

    def token_strings(self, ids: list[int]) -> list[str]:
        """Each token rendered on its own (what Neuronpedia shows per token).

        Cached per id: every activation response renders its tokens, and the tokenizer's
        Python wrapper costs more than the whole ranking of a prompt's features.
        """
        cache = self._token_string_cache
        missing = list({i for i in ids if i not in cache})
        if missing:
            cache.update(
                zip(missing, self.tokenizer.batch_decode([[i] for i in missing]), strict=True)
            )
        return [cache[i] for i in ids]

    def special_token_ids(self) -> set[int]:
        return set(self.tokenizer.all_special_ids)

    def hook_layer(self, hook_name: str) -> int:
        """Block index of a hook; raises NotFound for a hook the model does not have."""
        if hook_name not in self.bridge.hook_dict:
            raise NotFound(f"unknown hook {hook_name!r} for model {self.model_id}")
        layer = layer_of_hook(hook_name)
        return self.n_layers - 1 if layer is None else layer

    # -- forward ----------------------------------------------------------------
    @torch.no_grad()
    def run_hooks(
        self,
        tokens: torch.Tensor,  # [batch, seq]
        hook_names: list[str],
        attention_mask: torch.Tensor | None = None,  # [batch, seq]
    ) -> dict[str, torch.Tensor]:
        """Activations at `hook_names`, stopping the forward after the last block needed.

        `attn.hook_z` comes back flattened to [batch, seq, n_heads * d_head], the shape
        SAEs trained on it expect; attention patterns and scores stay [batch, n_heads, q, k].
        """
        stop = max(self.hook_layer(h) for h in hook_names) + 1
        # Only a hook outside the blocks (ln_final, unembed) needs the model's head; stopping
        # after the last block otherwise skips the 49k-token unembedding (~20% of a forward).
        outside_blocks = any(layer_of_hook(h) is None for h in hook_names)
        kwargs: dict[str, Any] = {}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
        _, cache = self.bridge.run_with_cache(
            tokens,
            names_filter=list(hook_names),
            stop_at_layer=None if outside_blocks else stop,
            return_cache_object=False,
            **kwargs,
        )
        out: dict[str, torch.Tensor] = {}
        for name in hook_names:
            act = cache[name]
            if act.ndim == 4 and not name.endswith(PATTERN_HOOKS):  # [batch, seq, n_heads, d_head]
                act = act.flatten(-2)
            out[name] = act
        return out

    @torch.no_grad()
    def log_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        """[batch, seq, d_vocab] next-token log-probs through the TransformerLens wrapper."""
        logits = self.bridge(tokens, return_type="logits")
        return torch.log_softmax(logits.float(), dim=-1)

    @property
    def unembed(self) -> torch.Tensor:
        """W_U as [d_model, d_vocab] (for logit-lens)."""
        return self.hf_model.get_output_embeddings().weight.T


def wrap_hf_model(
    hf_model: Any,
    tokenizer: Any,
    *,
    model_id: str,
    hf_id: str,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    instruct: bool = False,
) -> LoadedModel:
    """Wrap an already-loaded HF causal LM with TransformerBridge (no hub call)."""
    from transformer_lens.model_bridge import TransformerBridge

    hf_model.eval()
    # The bridge rewires the modules it wraps in place: keep an untouched module tree for
    # generation. Only the modules are copied; the memo hands every parameter and buffer
    # back as itself, so both views share one set of weights (no second copy in memory).
    shared = {id(t): t for t in itertools.chain(hf_model.parameters(), hf_model.buffers())}
    plain = copy.deepcopy(hf_model, memo=shared)
    plain.eval()
    bridge = TransformerBridge.boot_transformers(
        hf_id, hf_model=hf_model, tokenizer=tokenizer, device=device, dtype=dtype
    )
    bridge.eval()
    cfg = bridge.cfg
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    d_mlp = int(getattr(hf_model.config, "intermediate_size", 0) or getattr(cfg, "d_mlp", 0) or 0)
    return LoadedModel(
        model_id=model_id,
        hf_id=hf_id,
        bridge=bridge,
        hf_model=plain,
        tokenizer=tokenizer,
        n_layers=int(cfg.n_layers),
        d_model=int(cfg.d_model),
        d_vocab=int(cfg.d_vocab),
        d_mlp=d_mlp,
        n_heads=int(cfg.n_heads),
        d_head=int(cfg.d_head),
        device=device,
        dtype=dtype,
        prepend_bos=bool(getattr(cfg, "default_prepend_bos", True)),
        instruct=instruct or getattr(tokenizer, "chat_template", None) is not None,
    )


def load_model(
    model_id: str, device: str = "cpu", dtype: str | torch.dtype = "float32"
) -> LoadedModel:
    """Load a model by Interpedia id, HF id or local folder and wrap it with TransformerLens.

    The packaged model is converted from GGUF on first use (see `packaged.py`) and then
    loads offline from the Hugging Face cache.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model_id == TINY_MODEL_ID:
        return tiny_random_model()
    device = resolve_device(device)
    if device == "cpu":
        torch.set_flush_denormal(True)
    spec = resolve_model(model_id)
    source = spec.hf_id
    if spec.packaged:
        from interpedia_runtime.packaged import ensure_packaged_model, snapshot_dir

        ensure_packaged_model()
        # Load the snapshot folder itself: no hub round trip even without HF_HUB_OFFLINE.
        source = str(snapshot_dir())
    tdtype = torch_dtype(dtype)
    try:
        hf_model = AutoModelForCausalLM.from_pretrained(source, dtype=tdtype)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise NotFound(
            f"cannot load model {model_id!r} ({spec.hf_id}): {exc.__class__.__name__}; "
            "offline machines can load only the packaged model or a local folder"
        ) from exc
    hf_model.to(device)
    logger.info("loaded %s (%s) on %s/%s", model_id, spec.hf_id, device, tdtype)
    return wrap_hf_model(
        hf_model,
        tokenizer,
        model_id=spec.model_id,
        hf_id=spec.hf_id,
        device=device,
        dtype=tdtype,
        instruct=spec.instruct,
    )


def tiny_random_model(seed: int = 0, n_layers: int = 2, d_model: int = 64) -> LoadedModel:
    """A random LlamaForCausalLM with SmolLM2's tokenizer and a tiny config, for fast tests."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from interpedia_runtime.packaged import PACKAGED_HUB_ID, ensure_packaged_model, snapshot_dir

    torch.set_flush_denormal(True)
    ensure_packaged_model()
    tokenizer = AutoTokenizer.from_pretrained(str(snapshot_dir()))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=d_model * 2,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    hf_model = LlamaForCausalLM(config).to(torch.float32)
    return wrap_hf_model(
        hf_model,
        tokenizer,
        model_id=TINY_MODEL_ID,
        hf_id=PACKAGED_HUB_ID,
        device="cpu",
        dtype=torch.float32,
        instruct=True,
    )
