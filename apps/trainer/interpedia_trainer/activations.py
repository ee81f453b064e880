"""Activation streams for training: model → hook activations → shuffled batches.

`stream_activations` runs the model only up to the hook's layer on batches of contexts,
drops BOS positions, and mixes tokens through a shuffle buffer (fill, shuffle, emit half,
refill: SAELens's mixing buffer) so a training batch mixes many documents.
`cache_activations` writes one pass to disk as shards; `CachedActivations` replays them
(shuffled, looped for several epochs), so several runs (and the bench) reuse one pass.
"""

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from interpedia_core import stopping
from interpedia_core.errors import InvalidInput
from interpedia_trainer.model_runtime import HookedModel

logger = logging.getLogger(__name__)

_META = "activations.json"


def hook_activations(
    model: HookedModel,
    hook_name: str,
    contexts: torch.Tensor,  # [n, T]
    model_batch_size: int,
    exclude_special: bool,
    on_progress: Callable[[int, int], None] | None = None,
) -> Iterator[torch.Tensor]:
    """Yield [tokens, d_in] blocks (d_in: the hook's width), one per model batch, special
    tokens removed.

    A stop request ends the stream before the next model batch (`stopping.Stopped`), so
    whoever waits for activations never waits for a whole buffer to fill.
    """
    special = torch.tensor(model.special_token_ids, dtype=torch.long)
    n = contexts.shape[0]
    for first in range(0, n, model_batch_size):
        stopping.check()
        batch = contexts[first : first + model_batch_size]
        acts = model.forward_to_hook(batch, hook_name).float().cpu()  # [b, T, d]
        keep = (
            ~torch.isin(batch, special)
            if exclude_special
            else torch.ones_like(batch, dtype=torch.bool)
        )
        if on_progress is not None:
            on_progress(first + batch.shape[0], n)
        yield acts[keep]


def check_enough_tokens(contexts: torch.Tensor, batch_size: int) -> None:
    """`InvalidInput` before any model work if the corpus cannot fill one batch."""
    usable = contexts.numel() - contexts.shape[0]  # at most one BOS per context
    if usable < batch_size:
        raise InvalidInput(
            f"the corpus gives {usable} tokens, fewer than one training batch of {batch_size}"
        )


def stream_activations(
    model: HookedModel,
    hook_name: str,
    contexts: torch.Tensor,
    *,
    batch_size: int,
    model_batch_size: int = 8,
    buffer_batches: int = 8,
    seed: int = 0,
    loop: bool = True,
    exclude_special: bool = True,
    start_context: int = 0,
) -> Iterator[torch.Tensor]:
    """Shuffled [batch_size, d_in] batches, straight from the model (no disk).

    The first epoch starts at `start_context` (a resumed run continues near where its
    data stopped: `resume_context`); later epochs start at the first context.
    """
    model.validate_hook(hook_name)
    check_enough_tokens(contexts, batch_size)
    g = torch.Generator().manual_seed(seed)
    capacity = batch_size * buffer_batches
    buffer = torch.empty(0, model.hook_width(hook_name))
    epoch = contexts[start_context:]
    while True:
        for block in hook_activations(model, hook_name, epoch, model_batch_size, exclude_special):
            buffer = torch.cat([buffer, block])
            if buffer.shape[0] >= capacity:
                buffer = buffer[torch.randperm(buffer.shape[0], generator=g)]
                half = buffer.shape[0] // 2 // batch_size * batch_size
                for i in range(0, half, batch_size):
                    yield buffer[i : i + batch_size]
                buffer = buffer[half:]
        if not loop:
            buffer = buffer[torch.randperm(buffer.shape[0], generator=g)]
            for i in range(0, buffer.shape[0] - batch_size + 1, batch_size):
                yield buffer[i : i + batch_size]
            return
        epoch = contexts


def resume_context(
    contexts: torch.Tensor,  # [n, T]
    special_token_ids: Sequence[int],
    tokens_done: int,
    exclude_special: bool = True,
) -> int:
    """The context a stream that has given `tokens_done` tokens has reached (mod epochs).

    Approximate by the shuffle buffer: a resumed stream rereads the contexts whose tokens
    were buffered but not yet trained on, as close as a stream without a stored buffer gets.
    """
    if exclude_special:
        special = torch.tensor(list(special_token_ids), dtype=torch.long)
        per_context = (~torch.isin(contexts, special)).sum(1)
    else:
        per_context = torch.full((contexts.shape[0],), contexts.shape[1])
    ends = per_context.cumsum(0)  # tokens given once each context is done
    return int(torch.searchsorted(ends, tokens_done % int(ends[-1]), right=True))


@dataclass
class CachedActivations:
    """A folder of activation shards written by `cache_activations`."""

    path: Path
    n_tokens: int
    d_in: int  # the hook's width
    shards: list[str]

    @classmethod
    def open(cls, path: Path) -> "CachedActivations":
        meta = json.loads((Path(path) / _META).read_text())
        # caches written before hooks of other widths said "d_model"
        d_in = meta.get("d_in", meta.get("d_model"))
        return cls(Path(path), meta["n_tokens"], d_in, meta["shards"])

    def load_all(self) -> torch.Tensor:
        """All cached tokens [n_tokens, d_in] (for small caches, held-out sets, bench)."""
        return torch.cat([load_file(self.path / s)["acts"] for s in self.shards])

    def batches(
        self, batch_size: int, *, seed: int = 0, loop: bool = True, skip_tokens: int = 0
    ) -> Iterator[torch.Tensor]:
        """Shuffled batches; each epoch reshuffles shard order and tokens within a shard.

        `skip_tokens` drops that many tokens first (resuming a run on the same stream).
        """
        if self.n_tokens < batch_size:
            raise InvalidInput(
                f"the cache holds {self.n_tokens} tokens, fewer than one batch of {batch_size}"
            )
        g = torch.Generator().manual_seed(seed)
        carry = torch.empty(0, self.d_in)
        to_skip = skip_tokens
        while True:
            for s in torch.randperm(len(self.shards), generator=g).tolist():
                shard = load_file(self.path / self.shards[s])["acts"]
                shard = torch.cat([carry, shard[torch.randperm(shard.shape[0], generator=g)]])
                end = shard.shape[0] // batch_size * batch_size
                for i in range(0, end, batch_size):
                    if to_skip >= batch_size:
                        to_skip -= batch_size
                        continue
                    yield shard[i : i + batch_size]
                carry = shard[end:]
            if not loop:
                return


def cache_activations(
    model: HookedModel,
    hook_name: str,
    contexts: torch.Tensor,
    out_dir: Path,
    *,
    shard_tokens: int = 65536,
    model_batch_size: int = 8,
    exclude_special: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> CachedActivations:
    """Run the model once over `contexts` and write the hook's activations as shards.

    Reuses an existing cache whose metadata (model, hook, contexts) matches.
    """
    model.validate_hook(hook_name)
    out_dir = Path(out_dir)
    key = {
        "model_id": model.model_id,
        "hook_name": hook_name,
        "n_contexts": int(contexts.shape[0]),
        "context_size": int(contexts.shape[1]),
        "first_tokens": contexts[0, :8].tolist(),
        "exclude_special": exclude_special,
    }
    meta_path = out_dir / _META
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            logger.info("reusing activation cache %s", out_dir)
            return CachedActivations.open(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards: list[str] = []
    pending: list[torch.Tensor] = []
    n_pending = 0
    total = 0

    def flush() -> None:
        nonlocal pending, n_pending
        name = f"shard_{len(shards):05d}.safetensors"
        save_file({"acts": torch.cat(pending).contiguous()}, out_dir / name)
        shards.append(name)
        pending, n_pending = [], 0

    blocks = hook_activations(
        model, hook_name, contexts, model_batch_size, exclude_special, on_progress
    )
    for block in blocks:
        pending.append(block)
        n_pending += block.shape[0]
        total += block.shape[0]
        if n_pending >= shard_tokens:
            flush()
    if pending:
        flush()
    d_in = model.hook_width(hook_name)
    meta_path.write_text(
        json.dumps({"key": key, "n_tokens": total, "d_in": d_in, "shards": shards})
    )
    return CachedActivations(out_dir, total, d_in, shards)
