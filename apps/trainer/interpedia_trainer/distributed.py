"""Data-parallel SAE training over processes with `torch.distributed`, launched by torchrun.

torchrun starts one process per device and sets `RANK`, `WORLD_SIZE`, `LOCAL_RANK` and
the rendezvous (`MASTER_ADDR`/`MASTER_PORT`, or `--rdzv-endpoint`); `join_from_environment`
joins that group (gloo on CPU, NCCL on CUDA). Every rank holds the whole SAE and trains
on its own slice of each global batch; after the backward the gradients are averaged
with one all-reduce, as `DistributedDataParallel` does. DDP itself is not used because
the fast steps write gradients by hand, where its autograd hooks would not see them.
What must agree across ranks is reduced explicitly: firing counts (so every rank has the
same dead latents), BatchTopK's global cut-off and threshold, the activation scale, the
logged metrics. With one process, `SINGLE_PROCESS` makes every collective a no-op, so
the single-process path is the same code.
"""

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from interpedia_core.errors import InvalidInput

logger = logging.getLogger(__name__)

# Rank 0 alone runs held-out evaluation and writes checkpoints while the others wait in
# the next collective; allow that (and a slow first model load) well past gloo's default.
_TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class DataParallel:
    """This process's place in the group; collectives are no-ops for a single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"  # this rank's device: where collectives' tensors live (NCCL: a GPU)

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, evaluates, records metrics and writes checkpoints and the SAE."""
        return self.rank == 0

    def _reduce(self, tensor: torch.Tensor, op: dist.ReduceOp.RedOpType) -> torch.Tensor:
        if self.world_size > 1:
            dist.all_reduce(tensor, op=op)
        return tensor

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, in place (returned for chaining)."""
        return self._reduce(tensor, dist.ReduceOp.SUM)

    def all_reduce_min(self, tensor: torch.Tensor) -> torch.Tensor:
        return self._reduce(tensor, dist.ReduceOp.MIN)

    def all_reduce_max(self, tensor: torch.Tensor) -> torch.Tensor:
        return self._reduce(tensor, dist.ReduceOp.MAX)

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.world_size > 1:
            dist.barrier()

    def kth_largest(self, values: torch.Tensor, k: int) -> torch.Tensor:
        """The k-th largest of all ranks' non-negative `values` together (0-d float32).

        A bisection over float32 bit patterns, which order non-negative floats as their
        values do: 31 all-reduces of one count each, where gathering every rank's
        candidates would move k values per rank per step.
        """
        bits = values.float().contiguous().view(torch.int32)
        high = bits.max() if bits.numel() else bits.new_tensor(0)
        high = int(self.all_reduce_max(high.reshape(1).long()))
        low = 0  # invariant: at least k values (over all ranks) are >= low
        while low < high:
            middle = (low + high + 1) // 2
            count = self.all_reduce_sum((bits >= middle).sum().reshape(1))
            if int(count) >= k:
                low = middle
            else:
                high = middle - 1
        return torch.tensor(low, dtype=torch.int32).view(torch.float32)

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Mean of each gradient over ranks: one all-reduce per parameter, all in flight.

        Each rank's loss is a mean over its equal share of the global batch, so the mean
        of the ranks' gradients is the gradient of the global batch's loss. Reducing each
        gradient in place (no flat copy) keeps a large dictionary's memory at one copy.
        """
        if self.world_size == 1:
            return
        grads = []
        for p in params:
            if p.grad is not None:
                if not p.grad.is_contiguous():  # the sparse encoder step's is a transpose
                    p.grad = p.grad.contiguous()
                grads.append(p.grad)
        pending = [dist.all_reduce(g, op=dist.ReduceOp.SUM, async_op=True) for g in grads]
        for work in pending:
            work.wait()  # type: ignore[union-attr]
        for g in grads:
            g.div_(self.world_size)

    def check_same(self, name: str, value: int) -> None:
        """Raise on every rank unless all ranks hold the same `value` (e.g. resumed tokens)."""
        if self.world_size == 1:
            return
        low = self.all_reduce_min(torch.tensor([value], device=self.device))
        high = self.all_reduce_max(torch.tensor([value], device=self.device))
        if int(low) != int(high):
            raise InvalidInput(
                f"ranks disagree on {name} ({int(low)} to {int(high)}): every node must see "
                "the same --out folder (shared storage) to resume"
            )


SINGLE_PROCESS = DataParallel()


def launched_by_torchrun() -> bool:
    """Whether this process is one of torchrun's workers."""
    return "TORCHELASTIC_RUN_ID" in os.environ or (
        "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ
    )


def join_from_environment(device: str) -> DataParallel:
    """Join torchrun's process group (once); a single process when not launched by it.

    `device` is the run's device setting: `cuda` becomes this rank's own GPU
    (`cuda:LOCAL_RANK`) and selects NCCL; anything else trains with gloo.
    """
    if not launched_by_torchrun():
        return DataParallel(device=device)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    cuda = device.startswith("cuda")
    if cuda and device == "cuda":
        device = f"cuda:{local_rank}"
    if world > 1 and not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=_TIMEOUT)
        logger.info("rank %d of %d joined (%s)", rank, world, dist.get_backend())
    return DataParallel(rank, world, local_rank, device)


def leave() -> None:
    """Leave the process group, if joined (end of a distributed run)."""
    if dist.is_initialized():
        dist.destroy_process_group()
