"""The SAE training loop: activation batches in, a SAELens SAE folder out.

It knows nothing about language models (as SAELens's `SAETrainer`): it takes an iterator
of [batch, d_in] activation tensors, an optional evaluator callable for held-out metrics
and an optional `on_metrics` callback so the caller (CLI, job) can store a time series.
The step itself is `sparse_decode`'s fast step for TopK-family and standard SAEs and
SAELens's own `training_forward_pass` otherwise (`fast=False` forces that path; the bench
uses it to check that both reach the same explained variance).

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
from sae_lens.saes.sae import TrainingSAE, TrainStepInput
from sae_lens.training.activation_scaler import ActivationScaler
from sae_lens.training.optim import CoefficientScheduler, get_lr_scheduler
from safetensors.torch import save_file

from interpedia_core import stopping
from interpedia_core.errors import InvalidInput
from interpedia_trainer.architectures import build_training_sae, validate_architecture
from interpedia_trainer.sparse_decode import (
    StepResult,
    dense_standard_training_step,
    sparse_topk_training_step,
)

logger = logging.getLogger(__name__)

MetricsCallback = Callable[[dict[str, float]], None]
Evaluator = Callable[[TrainingSAE[Any]], dict[str, float]]

_STATE_FILE = "trainer_state.pt"
# "expected_average_only_in" scales inputs to mean norm sqrt(d_in) while training and folds
# the factor into the saved weights (SAELens's option of that name).
NORMALIZATIONS = ("none", "expected_average_only_in")


@dataclass
class TrainingConfig:
    """Everything that defines a training run (saved as training_config.json)."""

    d_in: int
    hook_name: str = "blocks.6.hook_resid_post"
    architecture: str = "topk"
    d_sae: int | None = None
    expansion_factor: int = 8
    k: float | None = 32
    l1_coefficient: float = 5.0
    l1_warm_up_steps: int = 0
    l0_coefficient: float = 1.0
    lr: float = 3e-4
    lr_scheduler: str = "constant"
    lr_warm_up_steps: int = 0
    lr_decay_steps: int = 0
    lr_end: float | None = None
    batch_size: int = 4096
    total_tokens: int = 1_000_000
    seed: int = 42
    dtype: str = "float32"
    device: str = "cpu"
    normalize_activations: str = "none"
    n_batches_for_norm_estimate: int = 10
    dead_feature_window: int = 1000  # steps without firing before a latent counts as dead
    dense_threshold: float = 0.1  # a latent firing on more than this share of tokens is dense
    log_every_steps: int = 10
    eval_every_steps: int = 0  # 0: only at the end
    checkpoint_every_steps: int = 0  # 0: only the final folder
    fast: bool = True
    model_name: str = ""
    context_size: int = 128
    prepend_bos: bool = True
    dataset_path: str = ""

    @property
    def resolved_d_sae(self) -> int:
        return self.d_sae if self.d_sae is not None else self.d_in * self.expansion_factor

    @property
    def total_steps(self) -> int:
        return max(1, self.total_tokens // self.batch_size)

    def validate(self) -> None:
        """Raise `InvalidInput` for any option that cannot work, before any work starts."""
        if self.d_sae is not None and self.d_sae <= 0:
            raise InvalidInput(f"d_sae must be positive, got {self.d_sae}")
        if self.d_sae is None and self.expansion_factor <= 0:
            raise InvalidInput(f"expansion_factor must be positive, got {self.expansion_factor}")
        validate_architecture(self.architecture, self.d_in, self.resolved_d_sae, self.k)
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

    def __init__(self, cfg: TrainingConfig, out_dir: Path) -> None:
        cfg.validate()
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        torch.manual_seed(cfg.seed)
        self.sae = build_training_sae(
            cfg.architecture,
            cfg.d_in,
            cfg.resolved_d_sae,
            k=cfg.k,
            l1_coefficient=cfg.l1_coefficient,
            l0_coefficient=cfg.l0_coefficient,
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
        )
        if cfg.architecture == "standard" and cfg.l1_warm_up_steps:
            self.sae.cfg.l1_warm_up_steps = cfg.l1_warm_up_steps
        self.fast = cfg.fast and cfg.architecture in ("standard", "topk", "batchtopk")
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
        self.n_tokens = 0
        self.n_steps = 0
        self.history: list[dict[str, float]] = []

    # -- checkpoints -------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoints" / "latest"

    def save_checkpoint(self) -> None:
        """Write weights and trainer state atomically enough: a temp dir renamed over latest."""
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
        """Resume from checkpoints/latest if present; returns whether it did."""
        state_path = self.checkpoint_dir / _STATE_FILE
        if not state_path.exists():
            return False
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
        torch.set_rng_state(state["rng"])
        logger.info("resumed from %s at %d tokens", self.checkpoint_dir, self.n_tokens)
        return True

    @contextmanager
    def checkpoint_on_stop(self) -> Iterator[None]:
        """Save a checkpoint when the block stops on request (Ctrl-C, SIGTERM, a worker
        shutting down), whatever `checkpoint_every_steps` says: the rerun resumes here.

        `run` stops only between steps, so the state saved is that of the last whole step.
        """
        try:
            yield
        except stopping.Stopped as exc:
            self.save_checkpoint()
            raise exc.at(
                f"at step {self.n_steps} ({self.n_tokens:,} tokens); "
                f"checkpoint in {self.checkpoint_dir}"
            ) from None

    # -- one step ------------------------------------------------------------------------
    @property
    def dead_mask(self) -> torch.Tensor:
        return self.steps_since_fired > self.cfg.dead_feature_window

    def step(self, batch: torch.Tensor) -> dict[str, float]:
        """One optimiser step on a raw activation batch; returns cheap per-step metrics."""
        x = self.scaler(batch.to(self.cfg.device, dtype=self.sae.dtype))
        self.sae.train()
        coeffs = {n: s.value for n, s in self.coefficients.items()}
        result = self._forward_backward(x, coeffs)
        torch.nn.utils.clip_grad_norm_(self.sae.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.lr_scheduler.step()
        for s in self.coefficients.values():
            s.step()

        with torch.no_grad():
            self.steps_since_fired += 1
            self.steps_since_fired[result.fired > 0] = 0
            self.act_freq += result.fired
            self.n_freq_tokens += x.shape[0]
            per_token = (result.sae_out - x).pow(2).sum(-1)
            total_var = (x - x.mean(0)).pow(2).sum(-1)
            ev = 1 - per_token.mean() / total_var.mean()
        self.n_tokens += x.shape[0]
        self.n_steps += 1
        return {
            "tokens": float(self.n_tokens),
            "step": float(self.n_steps),
            "loss": result.loss,
            **{f"loss/{n}": v for n, v in result.losses.items()},
            "l0": result.l0,
            "explained_variance": float(ev),
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "dead_fraction": float(self.dead_mask.float().mean()),
        }

    def _forward_backward(self, x: torch.Tensor, coeffs: dict[str, float]) -> StepResult:
        arch = self.cfg.architecture
        if self.fast and arch == "standard":
            return dense_standard_training_step(self.sae, x, coeffs["l1"])  # type: ignore[arg-type]
        if self.fast:
            return sparse_topk_training_step(self.sae, x, self.dead_mask)  # type: ignore[arg-type]
        out = self.sae.training_forward_pass(
            TrainStepInput(
                sae_in=x,
                coefficients=coeffs,
                dead_neuron_mask=self.dead_mask,
                n_training_steps=self.n_steps,
                is_logging_step=False,
            )
        )
        out.loss.backward()
        with torch.no_grad():
            fired = (out.feature_acts > 0).sum(0)
        return StepResult(
            loss=float(out.loss.detach()),
            losses={n: float(v.detach()) for n, v in out.losses.items()},
            sae_out=out.sae_out.detach(),
            fired=fired,
            l0=float(fired.sum()) / x.shape[0],
        )

    # -- the loop ------------------------------------------------------------------------
    def run(
        self,
        batches: Iterator[torch.Tensor],
        *,
        evaluator: Evaluator | None = None,
        on_metrics: MetricsCallback | None = None,
        on_progress: Callable[[int, int, dict[str, float]], None] | None = None,
    ) -> TrainResult:
        cfg = self.cfg
        if cfg.normalize_activations == "expected_average_only_in" and (
            self.scaler.scaling_factor is None
        ):
            self.scaler.estimate_scaling_factor(
                d_in=cfg.d_in,
                data_provider=batches,
                n_batches_for_norm_estimate=cfg.n_batches_for_norm_estimate,
            )
        started = time.perf_counter()
        start_tokens = self.n_tokens
        total = cfg.total_steps * cfg.batch_size
        while self.n_tokens < total:
            stopping.check()  # between steps; see checkpoint_on_stop
            try:
                batch = next(batches)
            except StopIteration:
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

        final = self._final_metrics()
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

    def _evaluate(self, evaluator: Evaluator) -> dict[str, float]:
        self.sae.eval()
        with torch.no_grad():
            out = evaluator(self.sae)
        self.sae.train()
        return out

    def _final_metrics(self) -> dict[str, float]:
        freq = self.act_freq / max(self.n_freq_tokens, 1)
        return {
            "dead_fraction": float(self.dead_mask.float().mean()),
            "dense_fraction": float((freq > self.cfg.dense_threshold).float().mean()),
            "mean_l0_train": float(freq.sum()),
        }

    def save_final(self, final: dict[str, float]) -> Path:
        """Fold the activation scale into the weights and write the SAELens folder."""
        out = self.out_dir
        out.mkdir(parents=True, exist_ok=True)
        if self.scaler.scaling_factor is not None:
            self.sae.fold_activation_norm_scaling_factor(self.scaler.scaling_factor)
            self.scaler.scaling_factor = None
        freq = (self.act_freq / max(self.n_freq_tokens, 1)).float().cpu()
        self.sae.cfg.metadata.l0 = float(freq.sum())
        self.sae.cfg.metadata.num_dead_features = int(self.dead_mask.sum())
        self.sae.save_inference_model(out)
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
) -> TrainResult:
    """Train one SAE on `batches` ([batch_size, d_in] tensors) and write it to `out_dir`.

    With `resume`, a checkpoint in `out_dir/checkpoints/latest` is loaded first and
    training continues from its token count (the caller's iterator should skip the
    tokens already seen: `TrainResult.n_tokens` / the checkpoint's `n_tokens`).
    """
    loop = SAETrainingLoop(cfg, out_dir)
    if resume:
        loop.load_checkpoint()
    with loop.checkpoint_on_stop():
        return loop.run(
            batches, evaluator=evaluator, on_metrics=on_metrics, on_progress=on_progress
        )
