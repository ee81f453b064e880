"""The trainer's view of a language model: run to a hook, splice a hook, unembed.

A thin adapter over `interpedia_runtime.models.LoadedModel`, which resolves Interpedia ids
(`smollm2-135m`, loaded offline from the packaged snapshot), HF ids and local folders.
What it adds is what training and dashboards need: hook checks with messages that say
how to fix the hook, a CE loss with one hook replaced, and the tokens to ignore.
`tiny_hooked_model()` is the runtime's random two-layer model, for fast tests.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from interpedia_core import stopping
from interpedia_core.errors import InvalidInput
from interpedia_runtime.models import (
    PACKAGED_MODEL_ID,
    LoadedModel,
    layer_of_hook,
    load_model,
    resolve_model,
    tiny_random_model,
)

DEFAULT_MODEL_ID = PACKAGED_MODEL_ID


@dataclass
class HookedModel:
    """A loaded model seen through hooks; every method runs without gradients."""

    loaded: LoadedModel
    _widths: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def bridge(self) -> Any:  # transformer_lens.model_bridge.TransformerBridge
        return self.loaded.bridge

    @property
    def tokenizer(self) -> Any:
        return self.loaded.tokenizer

    @property
    def model_id(self) -> str:
        """The Interpedia id (`smollm2-135m`), which the database keys everything by."""
        return self.loaded.model_id

    @property
    def display_name(self) -> str:
        return resolve_model(self.model_id).display_name or self.model_id

    @property
    def n_layers(self) -> int:
        return self.loaded.n_layers

    @property
    def d_model(self) -> int:
        return self.loaded.d_model

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
        layer = layer_of_hook(hook_name)
        if layer is None:
            raise InvalidInput(
                f"hook {hook_name!r} is not a per-layer hook; use e.g. blocks.6.hook_resid_post"
            )
        if layer >= self.n_layers:
            raise InvalidInput(
                f"hook {hook_name!r} names layer {layer}, but {self.model_id} has "
                f"{self.n_layers} layers (0..{self.n_layers - 1})"
            )
        if hook_name not in self.bridge.hook_dict:
            raise InvalidInput(f"{self.model_id} has no hook named {hook_name!r}")
        return layer

    def hook_width(self, hook_name: str) -> int:
        """The width of the hook's activations as an SAE reads them: d_model on the residual
        stream, n_heads * d_head on `attn.hook_z` (heads concatenated), d_mlp on
        `mlp.hook_post`. Probed with a one-token forward, so any hook the bridge has answers
        truly; remembered per hook."""
        if hook_name not in self._widths:
            token = torch.tensor([[self.tokenizer.bos_token_id or 0]])
            self._widths[hook_name] = int(self.forward_to_hook(token, hook_name).shape[-1])
        return self._widths[hook_name]

    def check_d_in(self, d_in: int, hook_name: str, what: str = "d_in") -> None:
        """`InvalidInput` unless `d_in` is the hook's width."""
        width = self.hook_width(hook_name)
        if d_in != width:
            raise InvalidInput(f"{what} {d_in} does not match the width {width} of {hook_name}")

    @torch.no_grad()
    def forward_to_hook(self, tokens: torch.Tensor, hook_name: str) -> torch.Tensor:
        """The hook's activations [batch, seq, d]; stops after the hook's layer.

        `attn.hook_z` comes back flattened over heads, the shape SAEs on it expect. A stop
        request (`interpedia_core.stopping`) abandons the forward between blocks: one
        batch of prompts takes seconds on a busy CPU, too long to wait for.
        """
        layer = self.validate_hook(hook_name)
        checks = [(f"blocks.{i}.hook_in", _check_stop) for i in range(1, layer + 1)]
        with self.bridge.hooks(fwd_hooks=checks):
            return self.loaded.run_hooks(tokens.to(self.device), [hook_name])[hook_name]

    @torch.no_grad()
    def loss_with_hook(
        self,
        tokens: torch.Tensor,  # [batch, seq]
        hook_name: str,
        replace: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> float:
        """Mean next-token CE loss; with `replace`, the hook's output is swapped for it."""
        tokens = tokens.to(self.device)
        if replace is None:
            return float(self.bridge(tokens, return_type="loss"))

        def hook(acts: torch.Tensor, hook: Any) -> torch.Tensor | None:
            return _per_token(replace, acts)

        return float(
            self.bridge.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(hook_name, hook)])
        )

    @torch.no_grad()
    def logits_with_hook(
        self,
        tokens: torch.Tensor,  # [batch, seq]
        hook_name: str,
        edit: Callable[[torch.Tensor], torch.Tensor | None],
    ) -> torch.Tensor:
        """Logits [batch, seq, d_vocab] of a whole forward in which `edit(acts)` sees the
        hook's output and may replace it (returning None keeps it: a read-only tap)."""

        def hook(acts: torch.Tensor, hook: Any) -> torch.Tensor | None:
            return _per_token(edit, acts)

        return self.bridge.run_with_hooks(
            tokens.to(self.device), return_type="logits", fwd_hooks=[(hook_name, hook)]
        )


def _per_token(
    edit: Callable[[torch.Tensor], torch.Tensor | None], acts: torch.Tensor
) -> torch.Tensor | None:
    """`edit` on [batch, seq, d] whatever the hook's shape: `attn.hook_z` is
    [batch, seq, n_heads, d_head] inside the forward, while an SAE on it (and every edit)
    reads the heads concatenated, as `forward_to_hook` hands them out."""
    if acts.ndim != 4:
        return edit(acts)
    out = edit(acts.flatten(-2))
    return None if out is None else out.reshape(acts.shape)


def _check_stop(acts: torch.Tensor, hook: Any) -> None:
    stopping.check()


def load_hooked_model(
    model_id: str = DEFAULT_MODEL_ID, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> HookedModel:
    """Load a model by Interpedia id, HF id or folder (`tiny-random`: the test model)."""
    return HookedModel(load_model(model_id, device, dtype))


def tiny_hooked_model(seed: int = 0, n_layers: int = 2, d_model: int = 64) -> HookedModel:
    """A random Llama with the packaged tokenizer: fast, deterministic, for tests."""
    return HookedModel(tiny_random_model(seed=seed, n_layers=n_layers, d_model=d_model))
