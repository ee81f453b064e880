"""The trainer's view of a language model: run to a hook, splice a hook, unembed.

A thin adapter over a TransformerLens `TransformerBridge`. It uses
`interpedia_runtime.models.load_model` when that exists and otherwise boots the bridge
from the Hugging Face folder itself (the packaged model loads offline by hub id after
`interpedia models prepare`). `tiny_hooked_model()` builds a random two-layer Llama with
the packaged tokenizer for fast tests.
"""

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextlib import nullcontext as _nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from interpedia_core.errors import InvalidInput

logger = logging.getLogger(__name__)

_LAYER = re.compile(r"^blocks\.(\d+)\.")
DEFAULT_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
TINY_MODEL_ID = "tiny-random"


@contextmanager
def _hub_offline() -> Iterator[None]:
    """Keep transformers / TransformerLens off the network while loading a local snapshot.

    `HF_HUB_OFFLINE` is read once at import; without it, loading the packaged model by
    hub id still probes huggingface.co for optional tokenizer files and retries for
    about a minute when there is no network. `huggingface_hub.is_offline_mode()` reads
    this module constant, so setting it for the duration of the load is enough.
    """
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


@dataclass
class HookedModel:
    """A bridge plus its tokenizer; every method runs without gradients."""

    bridge: Any  # transformer_lens.model_bridge.TransformerBridge
    tokenizer: Any
    model_id: str

    @property
    def n_layers(self) -> int:
        return int(self.bridge.cfg.n_layers)

    @property
    def d_model(self) -> int:
        return int(self.bridge.cfg.d_model)

    @property
    def device(self) -> torch.device:
        return next(self.bridge.parameters()).device

    @property
    def W_U(self) -> torch.Tensor:  # [d_model, d_vocab]
        return self.bridge.W_U.detach()

    @property
    def special_token_ids(self) -> list[int]:
        """BOS / EOS / pad ids: masked out of dashboards and concept statistics."""
        ids = {
            self.tokenizer.bos_token_id,
            self.tokenizer.eos_token_id,
            self.tokenizer.pad_token_id,
        }
        return sorted(i for i in ids if i is not None)

    def validate_hook(self, hook_name: str) -> int:
        """Return the hook's layer; `InvalidInput` if the model has no such hook."""
        match = _LAYER.match(hook_name)
        if match is None:
            raise InvalidInput(
                f"hook {hook_name!r} is not a per-layer hook; use e.g. blocks.6.hook_resid_post"
            )
        layer = int(match.group(1))
        if layer >= self.n_layers:
            raise InvalidInput(
                f"hook {hook_name!r} names layer {layer}, but {self.model_id} has "
                f"{self.n_layers} layers (0..{self.n_layers - 1})"
            )
        if hook_name not in self.bridge.hook_dict:
            raise InvalidInput(f"{self.model_id} has no hook named {hook_name!r}")
        return layer

    @torch.no_grad()
    def forward_to_hook(self, tokens: torch.Tensor, hook_name: str) -> torch.Tensor:
        """The hook's activations [batch, seq, d_model]; stops after the hook's layer."""
        layer = self.validate_hook(hook_name)
        _, cache = self.bridge.run_with_cache(
            tokens.to(self.device), names_filter=[hook_name], stop_at_layer=layer + 1
        )
        return cache[hook_name]

    @torch.no_grad()
    def loss_with_hook(
        self,
        tokens: torch.Tensor,
        hook_name: str,
        replace: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> float:
        """Mean next-token CE loss; with `replace`, the hook's output is swapped for it."""
        tokens = tokens.to(self.device)
        if replace is None:
            return float(self.bridge(tokens, return_type="loss"))

        def hook(acts: torch.Tensor, hook: Any) -> torch.Tensor:
            return replace(acts)

        return float(
            self.bridge.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(hook_name, hook)])
        )


def load_hooked_model(
    model_id: str = DEFAULT_MODEL_ID, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> HookedModel:
    """Load a model for training or dashboards (offline for the packaged model).

    `tiny-random` gives `tiny_hooked_model()` (tests, CLI smoke runs).
    """
    if model_id == TINY_MODEL_ID:
        return tiny_hooked_model()
    try:  # the shared runtime, once it provides a loader
        from interpedia_runtime.models import load_model  # type: ignore[import-not-found]
    except ImportError:
        load_model = None
    if load_model is not None:
        loaded = load_model(model_id, device, dtype)
        bridge = getattr(loaded, "bridge", None) or getattr(loaded, "model", None)
        if bridge is not None and getattr(loaded, "tokenizer", None) is not None:
            return HookedModel(bridge=bridge, tokenizer=loaded.tokenizer, model_id=model_id)
    return _boot(model_id, device, dtype)


def _boot(model_id: str, device: str, dtype: torch.dtype) -> HookedModel:
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = model_id == DEFAULT_MODEL_ID
    if local:  # the packaged model: converted once into the HF cache, never downloaded
        from interpedia_runtime.packaged import ensure_packaged_model

        ensure_packaged_model()
    with _hub_offline() if local else _nullcontext():
        try:
            tokenizer = AutoTokenizer.from_pretrained(model_id)
            hf = AutoModelForCausalLM.from_pretrained(model_id, dtype=dtype)
        except OSError as exc:
            raise InvalidInput(f"cannot load model {model_id!r}: {exc}") from exc
        hf.eval()
        bridge = TransformerBridge.boot_transformers(
            model_id, hf_model=hf, tokenizer=tokenizer, device=device, dtype=dtype
        )
    return HookedModel(bridge=bridge, tokenizer=tokenizer, model_id=model_id)


def tiny_hooked_model(seed: int = 0, n_layers: int = 2, d_model: int = 32) -> HookedModel:
    """A random Llama with the packaged tokenizer: fast, deterministic, for tests."""
    try:
        from interpedia_runtime.models import tiny_random_model  # type: ignore[import-not-found]
    except ImportError:
        tiny_random_model = None
    if tiny_random_model is not None:
        loaded = tiny_random_model()
        bridge = getattr(loaded, "bridge", None)
        if bridge is not None and getattr(loaded, "tokenizer", None) is not None:
            return HookedModel(bridge=bridge, tokenizer=loaded.tokenizer, model_id=TINY_MODEL_ID)
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from interpedia_runtime.packaged import ensure_packaged_model

    with _hub_offline():
        tokenizer = AutoTokenizer.from_pretrained(ensure_packaged_model())
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=2 * d_model,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    hf = LlamaForCausalLM(cfg).eval()
    with _hub_offline():
        bridge = TransformerBridge.boot_transformers(
            TINY_MODEL_ID, hf_model=hf, tokenizer=tokenizer, device="cpu"
        )
    return HookedModel(bridge=bridge, tokenizer=tokenizer, model_id=TINY_MODEL_ID)
