"""Micro-batching of concurrent activation requests.

Neuronpedia's server runs one request at a time behind a global lock. Here every activation
request only enqueues its prompt; one worker gathers whatever arrives within a few
milliseconds (and everything that queued while the previous forward ran) into one
right-padded batch, runs a single forward in a worker thread, stopping after the deepest
block any request needs, encodes each needed SAE once for the whole batch, and hands each
request its own slice. No lock is held across a request: tokenising, ranking and
serialising run concurrently with the next forward.

Right padding keeps each prompt's positions and (causal) attention exactly what they
would be alone, so batched results equal sequential ones up to float rounding.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from interpedia_runtime.models import LoadedModel
from interpedia_runtime.saes import LoadedSae

logger = logging.getLogger(__name__)


@dataclass
class ActivationResult:
    """One prompt's activations: per hook [seq, d_hook] (attention patterns [n_heads, q, k])
    and per source [seq, d_sae]."""

    hooks: dict[str, torch.Tensor]
    features: dict[str, torch.Tensor]


@dataclass
class _Job:
    tokens: list[int]
    hooks: set[str]
    saes: list[LoadedSae]
    future: asyncio.Future[ActivationResult]
    extra: dict[str, object] = field(default_factory=dict)


def run_padded_batch(
    model: LoadedModel,
    token_lists: list[list[int]],
    hook_names: list[str],
    saes: list[LoadedSae],
    wanted: list[tuple[set[str], set[str]]],
) -> list[ActivationResult]:
    """One right-padded forward for all prompts; SAEs encoded once over the whole batch.

    `wanted[i]` = (hooks, source ids) prompt i asked for: only those are sliced out for it.
    """
    model.use_torch_threads()
    lengths = [len(t) for t in token_lists]
    pad_id = model.tokenizer.pad_token_id or 0
    batch = torch.full((len(token_lists), max(lengths)), pad_id, dtype=torch.long)
    for row, tokens in enumerate(token_lists):
        batch[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    batch = batch.to(model.device)
    # No attention mask is needed: with right padding, causal attention never lets a real
    # token see a pad, so real positions compute exactly what they would alone.
    acts = model.run_hooks(batch, hook_names)  # hook → [batch, seq, d]
    features: dict[str, torch.Tensor] = {}
    for sae in saes:
        features[sae.source_id] = sae.encode(acts[sae.hook_name])  # [batch, seq, d_sae]
    results = []
    for row, (length, (hooks, sources)) in enumerate(zip(lengths, wanted, strict=True)):
        results.append(
            ActivationResult(
                # On CPU from here: ranking and serialising are cheap and device-agnostic.
                hooks={h: _prompt_slice(acts[h], row, length).float().cpu() for h in hooks},
                features={s: features[s][row, :length].float().cpu() for s in sources},
            )
        )
    return results


def _prompt_slice(act: torch.Tensor, row: int, length: int) -> torch.Tensor:
    """One prompt's part of a padded batch's activation: [seq, d], or [n_heads, q, k] for
    attention patterns."""
    if act.ndim == 4:  # [batch, n_heads, q, k]
        return act[row, :, :length, :length]
    return act[row, :length]


class ActivationBatcher:
    """Gathers concurrent requests into padded batches run by one worker task."""

    def __init__(
        self,
        model: LoadedModel,
        window_s: float = 0.004,
        max_batch_size: int = 16,
        max_batch_tokens: int = 16384,
        runner: Callable[..., list[ActivationResult]] = run_padded_batch,
    ) -> None:
        self.model = model
        self.window_s = window_s
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self._runner = runner
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._stopped = False  # for good: see submit
        self.batches_run = 0
        self.last_batch_size = 0
        self._running_batch = False

    def start(self) -> None:
        if self._worker is None and not self._stopped:
            self._worker = asyncio.create_task(self._run(), name="activation-batcher")

    def idle(self) -> bool:
        """No job waiting and no batch running."""
        return self._queue.empty() and not self._running_batch

    async def stop(self) -> None:
        """Stop the worker for good (a retired engine's, or at shutdown)."""
        self._stopped = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def submit(
        self, tokens: list[int], hooks: set[str], saes: list[LoadedSae]
    ) -> ActivationResult:
        """Activations of one prompt; resolves when the batch it joined has run.

        After `stop` the prompt runs alone, here: a request that resolved this engine before
        /initialize retired it still gets its answer from the model it started on, and the
        worker stays stopped (started again, it would live on until shutdown)."""
        future: asyncio.Future[ActivationResult] = asyncio.get_running_loop().create_future()
        job = _Job(tokens, set(hooks) | {s.hook_name for s in saes}, saes, future)
        if self._stopped:
            await self._run_batch([job])
        else:
            self.start()
            await self._queue.put(job)
        return await future

    async def _gather(self) -> list[_Job]:
        first = await self._queue.get()
        self._running_batch = True
        jobs = [first]
        tokens = len(first.tokens)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.window_s
        while len(jobs) < self.max_batch_size:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                # Wait for more until the window closes, or until arrivals pause for a
                # quarter of it: a burst arrives back to back, and its batch need not
                # wait out the rest of the window.
                remaining = min(deadline - loop.time(), self.window_s / 4)
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            longest = max(len(job.tokens), max(len(j.tokens) for j in jobs))
            if longest * (len(jobs) + 1) > self.max_batch_tokens:
                # Too big for this batch: it leads the next one.
                await self._requeue_front(job)
                break
            jobs.append(job)
            tokens += len(job.tokens)
        return jobs

    async def _requeue_front(self, job: _Job) -> None:
        rest = [job]
        while not self._queue.empty():
            rest.append(self._queue.get_nowait())
        for item in rest:
            self._queue.put_nowait(item)

    async def _run(self) -> None:
        while True:
            jobs = await self._gather()  # holds jobs from here on: not idle
            try:
                await self._run_batch([j for j in jobs if not j.future.cancelled()])
            finally:
                self._running_batch = False

    async def _run_batch(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        hooks = sorted(set().union(*(j.hooks for j in jobs)))
        saes_by_id = {s.source_id: s for j in jobs for s in j.saes}
        wanted = [(j.hooks, {s.source_id for s in j.saes}) for j in jobs]
        try:
            results = await asyncio.to_thread(
                self._runner,
                self.model,
                [j.tokens for j in jobs],
                hooks,
                list(saes_by_id.values()),
                wanted,
            )
        except Exception as exc:  # handed to each waiting request, which re-raises it
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        self.batches_run += 1
        self.last_batch_size = len(jobs)
        for job, result in zip(jobs, results, strict=True):
            if not job.future.done():
                job.future.set_result(result)
