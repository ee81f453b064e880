"""The SAE training loop: activation batches in, a SAELens SAE folder out.

It knows nothing about language models (as SAELens's `SAETrainer`): it takes an iterator
of [batch, d_in] activation tensors, an optional evaluator callable for held-out metrics
and an optional `on_metrics` callback so the caller (CLI, job) can store a time series.
The step itself is `sparse_decode`'s fast step for TopK-family and standard SAEs (AuxK
dead-latent revival included) and SAELens's own `training_forward_pass` otherwise
(`fast=False` forces that path; the bench uses it to check that both reach the same
explained variance).

Under torchrun the same loop runs on every rank (`distributed.DataParallel`): each rank
steps on its slice of the global batch, gradients and firing counts are reduced, and
rank 0 alone evaluates, reports metrics and writes checkpoints and the SAE. Counters are
global (tokens of the global batch), so a checkpoint resumes on any number of ranks.
The evaluator always sees the inference SAE (what is saved, input scale folded in).

Output folder (what `sae_lens.SAE.load_from_disk` reads):
    cfg.json, sae_weights.safetensors, sparsity.safetensors   the inference SAE
    training_config.json, metrics.json                         our config and time series
    checkpoints/latest/                                         resumable trainer state
"""

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from sae_lens.saes.sae import SAE, TrainStepInput
from sae_lens.training.activation_scaler import ActivationScaler
from sae_lens.training.optim import CoefficientScheduler, get_lr_scheduler
from safetensors.torch import save_file

from interpedia_core import stopping
from interpedia_core.errors import InvalidInput
from interpedia_trainer.architectures import (
    ArchitectureOptions,
    build_training_sae,
    inference_sae,
    validate_architecture,
)
from interpedia_trainer.distributed import SINGLE_PROCESS, DataParallel
from interpedia_trainer.sparse_decode import (
    StepResult,
    dense_standard_training_step,
    sparse_topk_training_step,
)

logger = logging.getLogger(__name__)

MetricsCallback = Callable[[dict[str, float]], None]
Evaluator = Callable[[SAE[Any]], dict[str, float]]

_STATE_FILE = "trainer_state.pt"
# "expected_average_only_in" scales inputs to mean norm sqrt(d_in) while training and folds
# the factor into the saved weights (SAELens's option of that name).
NORMALIZATIONS = ("none", "expected_average_only_in")
# "mean": the decoder bias starts at the mean input (OpenAI's TopK paper starts it at the
# data's centre), so pre-activations start centred rather than dominated by the residual
# stream's large mean direction, which leaves most TopK latents dead from the first step.
B_DEC_INITS = ("mean", "zeros")


@dataclass
class TrainingConfig:
    """Everything that defines a training run (saved as training_config.json)."""

    d_in: int
    hook_name: str = "blocks.6.hook_resid_post"
    architecture: str = "topk"
    d_sae: int | None = None
    expansion_factor: int = 8
    k: float | None = 32
    aux_loss_coefficient: float = 1.0  # AuxK dead-latent revival (TopK family); 0: off
    matryoshka_widths: list[int] | None = None  # matryoshka_batchtopk; None: doubling prefixes
    l1_coefficient: float = 5.0
    l1_warm_up_steps: int = 0
    l0_coefficient: float = 1.0
    lr: float = 3e-4
    lr_scheduler: str = "constant"
    lr_warm_up_steps: int = 0
    lr_decay_steps: int = 0
    lr_end: float | None = None
    batch_size: int = 4096  # the global batch: split evenly across ranks
    total_tokens: int = 1_000_000
    seed: int = 42
    dtype: str = "float32"
    device: str = "cpu"
    normalize_activations: str = "none"
    n_batches_for_norm_estimate: int = 10  # also the batches b_dec_init="mean" averages
    b_dec_init: str = "mean"
    dead_feature_window: int = 1000  # steps without firing before a latent counts as dead
    dense_threshold: float = 0.1  # a latent firing on more than this share of tokens is dense
    log_every_steps: int = 10
    eval_every_steps: int = 0  # 0: only at the end
    checkpoint_every_steps: int = 0  # 0: only the final folder
    fast: bool = True
    transcoder: bool = False  # the decoder predicts another hook (`transcoders`)
    model_name: str = ""
    context_size: int = 128
    prepend_bos: bool = True
    dataset_path: str = ""

    @property
    def resolved_d_sae(self) -> int:
        return self.d_sae if self.d_sae is not None else self.d_in * self.expansion_factor

    @property
    def architecture_options(self) -> ArchitectureOptions:
        widths = self.matryoshka_widths
        return ArchitectureOptions(
            k=self.k,
            l1_coefficient=self.l1_coefficient,
            l0_coefficient=self.l0_coefficient,
            aux_loss_coefficient=self.aux_loss_coefficient,
            matryoshka_widths=tuple(widths) if widths is not None else None,
        )

    @property
    def total_steps(self) -> int:
        return max(1, self.total_tokens // self.batch_size)

    def validate(self) -> None:
        """Raise `InvalidInput` for any option that cannot work, before any work starts."""
        if self.d_sae is not None and self.d_sae <= 0:
            raise InvalidInput(f"d_sae must be positive, got {self.d_sae}")
        if self.d_sae is None and self.expansion_factor <= 0:
            raise InvalidInput(f"expansion_factor must be positive, got {self.expansion_factor}")
        validate_architecture(
            self.architecture, self.d_in, self.resolved_d_sae, self.architecture_options
        )
        if self.batch_size <= 0:
            raise InvalidInput(f"batch_size must be positive, got {self.batch_size}")
        if self.total_tokens < self.batch_size:
            raise InvalidInput(
                f"total_tokens ({self.total_tokens}) is smaller than one batch ({self.batch_size})"
            )
        if self.lr <= 0:
            raise InvalidInput(f"lr must be positive, got {self.lr}")
        if self.dead_feature_window <= 0:
            raise InvalidInput(
                f"dead_feature_window must be positive, got {self.dead_feature_window}"
            )
        if self.normalize_activations not in NORMALIZATIONS:
            raise InvalidInput(
                f"normalize_activations must be one of {', '.join(NORMALIZATIONS)}, "
                f"got {self.normalize_activations!r}"
            )
        if self.b_dec_init not in B_DEC_INITS:
            raise InvalidInput(
                f"b_dec_init must be one of {', '.join(B_DEC_INITS)}, got {self.b_dec_init!r}"
            )
        if self.dtype not in ("float32", "float64", "bfloat16", "float16"):
            raise InvalidInput(f"unsupported dtype {self.dtype!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainingConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"unknown training options: {', '.join(unknown)}")
        return cls(**data)


@dataclass
class TrainResult:
    """What a finished (or resumed-and-finished) run produced."""

    sae_path: Path
    n_tokens: int
    n_steps: int
    seconds: float
    tokens_per_second: float
    final_metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)


class SAETrainingLoop:
    """One training run's mutable state; `run()` is the loop. Use `train_sae` normally."""

    def __init__(
        self, cfg: TrainingConfig, out_dir: Path, parallel: DataParallel = SINGLE_PROCESS
    ) -> None:
        cfg.validate()
        if cfg.batch_size % parallel.world_size:
            raise InvalidInput(
                f"batch_size ({cfg.batch_size}) must split evenly over {parallel.world_size} ranks"
            )
        self.cfg = cfg
        self.parallel = parallel
        self.out_dir = Path(out_dir)
        torch.manual_seed(cfg.seed)  # every rank starts from the same weights
        self.sae = build_training_sae(
            cfg.architecture,
            cfg.d_in,
            cfg.resolved_d_sae,
            options=cfg.architecture_options,
            device=cfg.device,
            dtype=cfg.dtype,
            normalize_activations=cfg.normalize_activations,
            metadata={
                "model_name": cfg.model_name,
                "hook_name": cfg.hook_name,
                "context_size": cfg.context_size,
                "prepend_bos": cfg.prepend_bos,
                "dataset_path": cfg.dataset_path,
            },
            transcoder=cfg.transcoder,
        )
        if cfg.architecture == "standard" and cfg.l1_warm_up_steps:
            self.sae.cfg.l1_warm_up_steps = cfg.l1_warm_up_steps
        self.fast = cfg.fast and cfg.architecture != "jumprelu"
        self.optimizer = torch.optim.Adam(self.sae.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        self.lr_scheduler = get_lr_scheduler(
            cfg.lr_scheduler,
            optimizer=self.optimizer,
            training_steps=cfg.total_steps,
            lr=cfg.lr,
            warm_up_steps=cfg.lr_warm_up_steps,
            decay_steps=cfg.lr_decay_steps,
            lr_end=cfg.lr_end if cfg.lr_end is not None else cfg.lr / 10,
            num_cycles=1,
        )
        self.coefficients: dict[str, CoefficientScheduler] = {}
        for name, coeff in self.sae.get_coefficients().items():
            value, warm = (coeff, 0) if isinstance(coeff, int | float) else coeff
            self.coefficients[name] = CoefficientScheduler(warm_up_steps=warm, final_value=value)
        self.scaler = ActivationScaler()
        d_sae = cfg.resolved_d_sae
        self.act_freq = torch.zeros(d_sae, dtype=torch.float64, device=cfg.device)
        self.steps_since_fired = torch.zeros(d_sae, dtype=torch.long, device=cfg.device)
        self.n_freq_tokens = 0
        self.n_tokens = 0  # global: tokens of all ranks
        self.n_steps = 0
        self.history: list[dict[str, float]] = []

    @property
    def local_batch_size(self) -> int:
        """Tokens each rank's batches must hold."""
        return self.cfg.batch_size // self.parallel.world_size

    # -- checkpoints -------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoints" / "latest"

    def save_checkpoint(self) -> None:
        """Rank 0 writes weights and trainer state: a temp dir renamed over latest.

        Every rank holds the same state, so one copy resumes any number of ranks.
        """
        if not self.parallel.is_main:
            return
        tmp = self.checkpoint_dir.with_name("latest.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        self.sae.save_model(tmp)
        torch.save(
            {
                "optimizer": self.optimizer.state_dict(),
                "lr_scheduler": self.lr_scheduler.state_dict(),
                "coefficients": {n: s.state_dict() for n, s in self.coefficients.items()},
                "scaling_factor": self.scaler.scaling_factor,
                "act_freq": self.act_freq,
                "steps_since_fired": self.steps_since_fired,
                "n_freq_tokens": self.n_freq_tokens,
                "n_tokens": self.n_tokens,
                "n_steps": self.n_steps,
                "history": self.history,
                "rng": torch.get_rng_state(),
                "world_size": self.parallel.world_size,  # for the record: any number resumes
            },
            tmp / _STATE_FILE,
        )
        if self.checkpoint_dir.exists():
            old = self.checkpoint_dir.with_name("latest.old")
            self.checkpoint_dir.rename(old)
            tmp.rename(self.checkpoint_dir)
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
        else:
            tmp.rename(self.checkpoint_dir)

    def load_checkpoint(self) -> bool:
        """Resume from checkpoints/latest if present; returns whether it did.

        Every rank reads the same folder (several nodes need shared storage for `out`);
        ranks that see different checkpoints stop with an error rather than diverge.
        """
        state_path = self.checkpoint_dir / _STATE_FILE
        found = state_path.exists()
        if found:
            self.sae.load_weights_from_checkpoint(self.checkpoint_dir)
            state = torch.load(state_path, map_location=self.cfg.device, weights_only=False)
            self.optimizer.load_state_dict(state["optimizer"])
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
            for name, s in state["coefficients"].items():
                self.coefficients[name].load_state_dict(s)
            self.scaler.scaling_factor = state["scaling_factor"]
            self.act_freq = state["act_freq"]
            self.steps_since_fired = state["steps_since_fired"]
            self.n_freq_tokens = state["n_freq_tokens"]
            self.n_tokens = state["n_tokens"]
            self.n_steps = state["n_steps"]
            self.history = state["history"]
            torch.set_rng_state(state["rng"].cpu())
        self.parallel.check_same("the checkpoint's token count", self.n_tokens)
        if found:
            logger.info("resumed from %s at %d tokens", self.checkpoint_dir, self.n_tokens)
        return found

    @contextmanager
    def checkpoint_on_stop(self) -> Iterator[None]:
        """Save a checkpoint when the block stops on request (Ctrl-C, SIGTERM, a worker
        shutting down), whatever `checkpoint_every_steps` says: the rerun resumes here.

        `run` stops only between steps, so the state saved is that of the last whole step.
        """
        try:
            yield
        except stopping.Stopped as exc:
            self.save_checkpoint()  # rank 0 writes it; all ranks stopped at the same step
            self.parallel.barrier()  # no rank reports the checkpoint before it exists
            raise exc.at(
                f"at step {self.n_steps} ({self.n_tokens:,} tokens); "
                f"checkpoint in {self.checkpoint_dir}"
            ) from None

    # -- one step ------------------------------------------------------------------------
    @property
    def dead_mask(self) -> torch.Tensor:
        return self.steps_since_fired > self.cfg.dead_feature_window

    def step(self, batch: torch.Tensor, target: torch.Tensor | None = None) -> dict[str, float]:
        """One optimiser step on this rank's raw activation batch; returns global metrics.

        `target` (default: the batch itself) is what the decoder reconstructs; it is
        scaled with the input's factor.
        """
        device, dtype = self.cfg.device, self.sae.dtype
        x = self.scaler(batch.to(device, dtype=dtype))
        y = x if target is None else self.scaler(target.to(device, dtype=dtype))
        self.sae.train()
        coeffs = {n: s.value for n, s in self.coefficients.items()}
        result = self._forward_backward(x, y, coeffs)
        self.parallel.average_gradients(self.sae.parameters())
        torch.nn.utils.clip_grad_norm_(self.sae.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.lr_scheduler.step()
        for s in self.coefficients.values():
            s.step()

        with torch.no_grad():
            fired = self.parallel.all_reduce_sum(result.fired)
            self.steps_since_fired += 1
            self.steps_since_fired[fired > 0] = 0
            self.act_freq += fired
            stats = self._global_stats(y, result)
        n = int(stats["tokens"])
        self.n_freq_tokens += n
        self.n_tokens += n
        self.n_steps += 1
        return {
            "tokens": float(self.n_tokens),
            "step": float(self.n_steps),
            "loss": stats["loss"],
            **{f"loss/{name}": stats[name] for name in result.losses},
            "l0": stats["l0"],
            "explained_variance": stats["explained_variance"],
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "dead_fraction": float(self.dead_mask.float().mean()),
        }

    def _global_stats(self, y: torch.Tensor, result: StepResult) -> dict[str, float]:
        """Loss terms, L0 and explained variance of the global batch: one all-reduce.

        Each rank contributes token-weighted sums (float64: the variance is a difference
        of sums); explained variance is 1 - Σ‖y - ŷ‖² / Σ‖y - mean(y)‖².
        """
        n, d = y.shape
        y64 = y.double()
        names = list(result.losses)
        weighted = [n, *(v * n for v in (result.loss, result.l0, *result.losses.values()))]
        sums = torch.cat(
            [
                y64.sum(0),
                (result.sae_out.double() - y64).pow(2).sum().reshape(1),
                y64.pow(2).sum().reshape(1),
                torch.tensor(weighted, dtype=torch.float64, device=y.device),
            ]
        )
        sums = self.parallel.all_reduce_sum(sums)
        mean = sums[:d] / sums[d + 2]
        tail = torch.cat([sums[d:], (mean @ mean).reshape(1)])
        sse, squares, total, loss, l0, *terms, mean_sq = tail.tolist()  # one device sync
        variance = squares - total * mean_sq
        return {
            "tokens": total,
            "explained_variance": 1 - sse / variance if variance > 0 else 0.0,
            "loss": loss / total,
            "l0": l0 / total,
            **{name: value / total for name, value in zip(names, terms, strict=True)},
        }

    def _forward_backward(
        self, x: torch.Tensor, y: torch.Tensor, coeffs: dict[str, float]
    ) -> StepResult:
        target = None if y is x else y
        if self.fast and self.cfg.architecture == "standard":
            return dense_standard_training_step(self.sae, x, coeffs["l1"], target=target)  # type: ignore[arg-type]
        if self.fast:
            return sparse_topk_training_step(
                self.sae,  # type: ignore[arg-type]
                x,
                self.dead_mask,
                target=target,
                parallel=self.parallel,
            )
        step_input = TrainStepInput(
            sae_in=x,
            coefficients=coeffs,
            dead_neuron_mask=self.dead_mask,
            n_training_steps=self.n_steps,
            is_logging_step=False,
        )
        if target is None:
            out = self.sae.training_forward_pass(step_input)
            loss, losses = out.loss, out.losses
            feature_acts, sae_out = out.feature_acts, out.sae_out
        else:
            # SAELens's `training_forward_pass` reconstructs its input; a transcoder's
            # decoder predicts `target`, with the architecture's own sparsity terms.
            feature_acts, hidden_pre = self.sae.encode_with_hidden_pre(x)
            sae_out = self.sae.decode(feature_acts)
            losses = {
                "mse_loss": (sae_out - target).pow(2).sum(dim=-1).mean(),
                **self.sae.calculate_aux_loss(
                    step_input=step_input,
                    feature_acts=feature_acts,
                    hidden_pre=hidden_pre,
                    sae_out=sae_out,
                ),
            }
            loss = sum(losses.values())
        loss.backward()
        with torch.no_grad():
            fired = (feature_acts > 0).sum(0)
        return StepResult(
            loss=float(loss.detach()),
            losses={n: float(v.detach()) for n, v in losses.items()},
            sae_out=sae_out.detach(),
            fired=fired,
            l0=float(fired.sum()) / x.shape[0],
        )

    @torch.no_grad()
    def estimate_input_statistics(self, batches: Iterator[torch.Tensor]) -> None:
        """Before the first step: the input scale and the decoder bias's starting point.

        Reads `n_batches_for_norm_estimate` batches from each rank's stream (they are not
        trained on) and reduces over ranks: SAELens's `expected_average_only_in` factor
        sqrt(d_in) / mean ‖x‖, and with `b_dec_init="mean"` the mean (scaled) input.
        """
        d = self.cfg.d_in
        sums = torch.zeros(d + 2, dtype=torch.float64, device=self.cfg.device)
        for _ in range(self.cfg.n_batches_for_norm_estimate):
            batch = self._next_batch(batches)
            if batch is None:
                raise InvalidInput("the activation stream ended before training started")
            x = batch.to(self.cfg.device).double()
            sums[:d] += x.sum(0)
            sums[d] += x.norm(dim=-1).sum()
            sums[d + 1] += x.shape[0]
        sums = self.parallel.all_reduce_sum(sums)
        count = float(sums[d + 1])
        scale = 1.0
        if self.cfg.normalize_activations == "expected_average_only_in":
            scale = d**0.5 / (float(sums[d]) / count)
            self.scaler.scaling_factor = scale
        if self.cfg.b_dec_init == "mean":
            self.sae.b_dec.copy_((sums[:d] / count * scale).to(self.sae.b_dec.dtype))

    # -- the loop ------------------------------------------------------------------------
    def run(
        self,
        batches: Iterator[torch.Tensor],
        *,
        evaluator: Evaluator | None = None,
        on_metrics: MetricsCallback | None = None,
        on_progress: Callable[[int, int, dict[str, float]], None] | None = None,
    ) -> TrainResult:
        """Train to `total_tokens` on this rank's `batches` ([local batch, d_in] each).

        The callbacks are called on every rank that passes them (pass them on rank 0).
        """
        cfg = self.cfg
        fresh = self.n_steps == 0
        if fresh and (cfg.normalize_activations != "none" or cfg.b_dec_init == "mean"):
            self.estimate_input_statistics(batches)
        started = time.perf_counter()
        start_tokens = self.n_tokens
        total = cfg.total_steps * cfg.batch_size
        while self.n_tokens < total:
            batch = self._next_batch(batches)  # a stop request raises here, on all ranks
            if batch is None:
                logger.warning("activation stream ended at %d tokens", self.n_tokens)
                break
            metrics = self.step(batch)
            if (
                evaluator is not None
                and cfg.eval_every_steps
                and (self.n_steps % cfg.eval_every_steps == 0)
            ):
                metrics.update({f"eval/{k}": v for k, v in self._evaluate(evaluator).items()})
            if self.n_steps % cfg.log_every_steps == 0 or self.n_tokens >= total:
                self.history.append(metrics)
                if on_metrics is not None:
                    on_metrics(metrics)
            if on_progress is not None:
                on_progress(self.n_tokens, total, metrics)
            if cfg.checkpoint_every_steps and self.n_steps % cfg.checkpoint_every_steps == 0:
                self.save_checkpoint()
        seconds = time.perf_counter() - started

        final = self.final_metrics()
        if evaluator is not None:
            final.update({f"eval/{k}": v for k, v in self._evaluate(evaluator).items()})
        if on_metrics is not None:
            on_metrics({"tokens": float(self.n_tokens), "step": float(self.n_steps), **final})
        path = self.save_final(final)
        trained = self.n_tokens - start_tokens
        return TrainResult(
            sae_path=path,
            n_tokens=self.n_tokens,
            n_steps=self.n_steps,
            seconds=seconds,
            tokens_per_second=trained / seconds if seconds > 0 else math.inf,
            final_metrics=final,
            history=self.history,
        )

    def _next_batch(self, batches: Iterator[torch.Tensor]) -> torch.Tensor | None:
        """This rank's next batch, or None once any rank's stream has run dry.

        The safe point between steps (see `checkpoint_on_stop`). The ranks agree, in one
        all-reduce, on whether every stream gave a batch and whether any rank was asked to
        stop (its stream stopping mid-batch included): one rank stopping or running out
        alone would leave the others waiting in the next step's collectives.
        """
        batch, stopped = None, None
        try:
            stopping.check()
            batch = next(batches, None)
        except stopping.Stopped as exc:
            stopped = exc
        if self.parallel.world_size > 1:
            flags = [int(batch is not None), int(stopped is None)]
            have, carry_on = self.parallel.all_reduce_min(
                torch.tensor(flags, device=self.parallel.device)
            ).tolist()
            if not carry_on and stopped is None:
                stopped = stopping.Stopped("stopped on another rank")
            if not have:
                batch = None
        if stopped is not None:
            raise stopped
        return batch

    def inference_sae(self) -> SAE[Any]:
        """The SAE as it would be saved now: what users load, taking raw activations."""
        return inference_sae(self.sae, self.scaler.scaling_factor)

    def _evaluate(self, evaluator: Evaluator) -> dict[str, float]:
        """Held-out metrics of the inference SAE, on rank 0 only (the others get {})."""
        if not self.parallel.is_main:
            return {}
        with torch.no_grad():
            return evaluator(self.inference_sae())

    def final_metrics(self) -> dict[str, float]:
        freq = self.act_freq / max(self.n_freq_tokens, 1)
        return {
            "dead_fraction": float(self.dead_mask.float().mean()),
            "dense_fraction": float((freq > self.cfg.dense_threshold).float().mean()),
            "mean_l0_train": float(freq.sum()),
        }

    def save_final(self, final: dict[str, float]) -> Path:
        """Rank 0 writes the SAELens folder: the inference SAE plus our config and metrics."""
        out = self.out_dir
        if not self.parallel.is_main:
            return out
        out.mkdir(parents=True, exist_ok=True)
        freq = (self.act_freq / max(self.n_freq_tokens, 1)).float().cpu()
        self.sae.cfg.metadata.l0 = float(freq.sum())
        self.sae.cfg.metadata.num_dead_features = int(self.dead_mask.sum())
        self.inference_sae().save_model(out)
        save_file({"sparsity": torch.log10(freq + 1e-10)}, out / "sparsity.safetensors")
        (out / "training_config.json").write_text(json.dumps(asdict(self.cfg), indent=2))
        (out / "metrics.json").write_text(
            json.dumps({"final": final, "history": self.history}, indent=2)
        )
        return out


def train_sae(
    cfg: TrainingConfig,
    batches: Iterator[torch.Tensor],
    out_dir: Path,
    *,
    evaluator: Evaluator | None = None,
    on_metrics: MetricsCallback | None = None,
    on_progress: Callable[[int, int, dict[str, float]], None] | None = None,
    resume: bool = True,
    parallel: DataParallel = SINGLE_PROCESS,
) -> TrainResult:
    """Train one SAE on `batches` and write it to `out_dir`.

    `batches` are this rank's [batch_size / world_size, d_in] tensors. With `resume`, a
    checkpoint in `out_dir/checkpoints/latest` is loaded first and training continues
    from its token count (the caller's iterator should skip the tokens already seen:
    `TrainResult.n_tokens` / the checkpoint's `n_tokens`).
    """
    loop = SAETrainingLoop(cfg, out_dir, parallel)
    if resume:
        loop.load_checkpoint()
    with loop.checkpoint_on_stop():
        return loop.run(
            batches, evaluator=evaluator, on_metrics=on_metrics, on_progress=on_progress
        )
