"""The loaded model, its SAE sources and the activation batcher, plus request checks.

`Engine` is built once in the app's lifespan (in a worker thread, after the port opens) and
injected into routes. It owns what every endpoint needs: tokenising with the token limit,
resolving model / source / source-set names to loaded SAEs (with the errors users see), and
submitting prompts to the micro-batcher.
"""

import asyncio
import logging
from dataclasses import dataclass

import torch

from interpedia_core.errors import InvalidInput, NotFound, Unprocessable
from interpedia_inference.batching import ActivationBatcher, ActivationResult
from interpedia_inference.settings import InferenceSettings
from interpedia_inference.steering import SteeringHooks
from interpedia_runtime.models import MODEL_REGISTRY, LoadedModel, load_model
from interpedia_runtime.saes import LoadedSae, SaeRegistry

logger = logging.getLogger(__name__)


@dataclass
class Limits:
    token_limit: int
    max_completion_tokens: int


class Engine:
    """Model + SAE registry + batcher; every method raises domain errors on bad input."""

    def __init__(
        self,
        model: LoadedModel,
        registry: SaeRegistry,
        limits: Limits,
        batch_window_s: float = 0.004,
        max_batch_size: int = 16,
        lens_bf16: bool = True,
    ) -> None:
        self.model = model
        self.lens_bf16 = lens_bf16
        self.registry = registry
        self.limits = limits
        self.batcher = ActivationBatcher(
            model, window_s=batch_window_s, max_batch_size=max_batch_size
        )
        self._special_ids = model.special_token_ids()
        self.steering_hooks = SteeringHooks(model)
        names = {model.model_id, model.hf_id}
        for spec in MODEL_REGISTRY.values():
            if spec.model_id == model.model_id:
                names.add(spec.hf_id)
        self.model_names = names
        self.active_generations = 0  # steering/completion generations running now

    def idle(self) -> bool:
        """Nothing queued or batched on this engine's batcher and no generation running."""
        return self.active_generations == 0 and self.batcher.idle()

    def block_hook_points(self) -> list[str]:
        """Hook names inside block 0 without the `blocks.0.` prefix (every block has them)."""
        prefix = "blocks.0."
        return sorted(n[len(prefix) :] for n in self.model.bridge.hook_dict if n.startswith(prefix))

    # -- names --------------------------------------------------------------------
    def check_model(self, model_id: str) -> None:
        if model_id not in self.model_names:
            raise InvalidInput(
                f"unknown model {model_id!r}: this server serves {self.model.model_id!r}"
            )

    async def sae(self, source_id: str) -> LoadedSae:
        """The loaded source; a cache miss reads its weights in a thread, so the event loop
        keeps serving while it loads (concurrent misses share one load, see SaeRegistry)."""
        loaded = self.registry.loaded(source_id)
        if loaded is not None:
            return loaded
        return await asyncio.to_thread(self.registry.get, source_id)

    async def sources_of_set(self, source_set: str, selected: list[str]) -> list[LoadedSae]:
        in_set = self.registry.sources_in_set(source_set)
        if selected:
            unknown = [s for s in selected if s not in in_set]
            if unknown:
                raise NotFound(f"unknown source {unknown[0]!r} in source set {source_set!r}")
            in_set = [s for s in in_set if s in selected]
        return [await self.sae(s) for s in in_set]

    @staticmethod
    def feature_index(index: str | int | None) -> int:
        try:
            value = int(index)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InvalidInput(f"feature index {index!r} is not an integer") from None
        if value < 0:
            raise NotFound(f"feature index {value} does not exist")
        return value

    # -- tokens -------------------------------------------------------------------
    def tokenize(self, text: str, prepend_bos: bool | None = None) -> list[int]:
        """Token ids with BOS (by default); 400 when over the token limit."""
        ids = self.model.tokenize(text, prepend_bos=prepend_bos)
        self.check_length(len(ids))
        return ids

    def check_length(self, n_tokens: int) -> None:
        if n_tokens > self.limits.token_limit:
            raise InvalidInput(
                f"prompt has {n_tokens} tokens; the token limit is {self.limits.token_limit}"
            )
        if n_tokens == 0:
            raise InvalidInput("prompt is empty")

    def token_strings(self, ids: list[int]) -> list[str]:
        return self.model.token_strings(ids)

    def is_special(self, ids: list[int]) -> list[bool]:
        return [i in self._special_ids for i in ids]

    def is_bos(self, ids: list[int]) -> bool:
        return bool(ids) and ids[0] == self.model.bos_token_id

    def check_completion_tokens(self, n: int) -> None:
        if n > self.limits.max_completion_tokens:
            raise Unprocessable(
                f"n_completion_tokens {n} is above this server's cap of "
                f"{self.limits.max_completion_tokens}"
            )

    # -- activations --------------------------------------------------------------
    async def activations(
        self, tokens: list[int], saes: list[LoadedSae], hooks: set[str] | None = None
    ) -> ActivationResult:
        for hook in hooks or ():
            self.model.hook_layer(hook)  # NotFound for an unknown hook, before batching
        return await self.batcher.submit(tokens, hooks or set(), saes)

    def check_vector(self, vector: list[float], d: int, what: str) -> torch.Tensor:
        tensor = torch.tensor(vector, dtype=torch.float32)
        if tensor.numel() != d:
            raise InvalidInput(f"{what} has {tensor.numel()} values; expected {d}")
        if not torch.isfinite(tensor).all():
            raise Unprocessable(f"{what} contains non-finite values")
        return tensor

    def hook_width(self, hook: str) -> int:
        """d of a hook's activations (attn.hook_z flattened)."""
        self.model.hook_layer(hook)
        if hook.endswith("mlp.hook_post") or hook.endswith("mlp.hook_pre"):
            return self.model.d_mlp
        if hook.endswith(("attn.hook_z", "attn.hook_q", "attn.hook_result")):
            return self.model.n_heads * self.model.d_head
        return self.model.d_model


def build_engine(settings: InferenceSettings) -> Engine:
    """Load the model and configured SAEs (slow: run it off the event loop)."""
    if settings.torch_threads > 0:
        torch.set_num_threads(settings.torch_threads)  # this loading thread
    model = load_model(settings.model_id, device=settings.device, dtype=settings.dtype)
    model.torch_threads = settings.torch_threads
    registry = SaeRegistry(model, max_loaded_saes=settings.max_loaded_saes)
    for entry in settings.sae_sources:
        registry.add_source(entry, settings.sae_source_set)
    registry.load_all()
    return Engine(
        model,
        registry,
        Limits(settings.token_limit, settings.max_completion_tokens),
        batch_window_s=settings.batch_window_ms / 1000.0,
        max_batch_size=settings.max_batch_size,
        lens_bf16=settings.lens_bf16,
    )
