"""Core evaluation of an SAE on a fixed evaluation set, as SAE-Bench's `core` eval reports it.

The evaluation set is the last `n_contexts` contexts of the corpus (`corpus.tail_contexts`):
fixed, so sources of one model compare, and as far as possible from the text training
and dashboards read first. Two kinds of metric come from it:

- reconstruction, sparsity and density over every non-special token of all contexts:
  explained variance, MSE, cosine, L2 norms and ratio, relative reconstruction bias,
  L0 / L1, each feature's density (its share of tokens where it is non-zero) and from
  those the dead and dense fractions and the density histogram;
- model preservation over the first `n_ce_contexts`: next-token CE loss and KL to the
  clean model with the SAE spliced in and with the hook zero-ablated, giving CE loss
  recovered (`ce_loss_score`), delta loss and `kl_div_score`.

Definitions follow SAELens's `evals.py` (which SAE-Bench's core eval runs), with two
choices stated in the output's `eval_config`: special tokens (BOS, EOS, pad) are left out
of every metric and are not replaced when splicing or ablating (BOS activations are
outliers the SAE never trained on), and CE/KL run on a quarter of the contexts. CE needs
three whole forwards per context while the other metrics need the model only up to the
hook, so this keeps an evaluation near the cost of one forward over the set (see
bench/explore) while the reconstruction metrics still see every token.
"""

import importlib.metadata
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_core.errors import InvalidInput
from interpedia_db.models import Eval
from interpedia_trainer.model_runtime import HookedModel
from interpedia_trainer.pipeline import sae_hook

CORE = "core"
DENSITY_BINS = 40
LOG10_DENSITY_FLOOR = -6.0


@dataclass(frozen=True)
class EvaluationSet:
    """Which tokens an evaluation reads; recorded in each output's `eval_config`."""

    n_contexts: int = 64
    n_ce_contexts: int = 16
    context_size: int = 128
    batch_size: int = 8

    def check(self) -> None:
        if self.n_contexts < 1 or not 0 <= self.n_ce_contexts <= self.n_contexts:
            raise InvalidInput(
                f"an evaluation set needs 1+ contexts and 0..n_contexts CE contexts, got "
                f"{self.n_contexts} and {self.n_ce_contexts}"
            )
        if self.context_size < 2 or self.batch_size < 1:
            raise InvalidInput("context_size must be at least 2 and batch_size at least 1")


@dataclass
class _Sums:
    """Running sums over tokens (float64 on the CPU: variance is a difference of big sums)."""

    n_tokens: int = 0
    sum_x: torch.Tensor | None = None  # [d_in]
    sum_sq_norm: float = 0.0
    sum_sq_residual: float = 0.0
    sum_cos: float = 0.0
    sum_norm_in: float = 0.0
    sum_norm_out: float = 0.0
    sum_ratio: float = 0.0
    sum_sq_norm_out: float = 0.0
    sum_dot: float = 0.0
    sum_l0: float = 0.0
    sum_l1: float = 0.0
    fired: torch.Tensor | None = None  # [d_sae] tokens where each feature is non-zero

    def add(self, x: torch.Tensor, x_hat: torch.Tensor, feats: torch.Tensor) -> None:
        """x, x_hat [n, d_in]; feats [n, d_sae] (special tokens already removed)."""
        x64, x_hat64 = x.double(), x_hat.double()
        norm_in, norm_out = x64.norm(dim=-1), x_hat64.norm(dim=-1)
        dot = (x64 * x_hat64).sum(dim=-1)
        self.n_tokens += x.shape[0]
        self.sum_x = x64.sum(0) if self.sum_x is None else self.sum_x + x64.sum(0)
        self.sum_sq_norm += float(norm_in.pow(2).sum())
        self.sum_sq_residual += float((x64 - x_hat64).pow(2).sum())
        self.sum_cos += float((dot / (norm_in * norm_out).clamp(min=1e-12)).sum())
        self.sum_norm_in += float(norm_in.sum())
        self.sum_norm_out += float(norm_out.sum())
        # As SAELens: a near-zero input norm counts as 1 in the ratio's denominator.
        self.sum_ratio += float((norm_out / torch.where(norm_in < 1e-4, 1.0, norm_in)).sum())
        self.sum_sq_norm_out += float(norm_out.pow(2).sum())
        self.sum_dot += float(dot.sum())
        active = feats != 0
        self.sum_l0 += float(active.sum())
        self.sum_l1 += float(feats.abs().double().sum())
        counts = active.sum(0).long()
        self.fired = counts if self.fired is None else self.fired + counts


@dataclass
class _Losses:
    """Per-position CE and KL sums over the CE contexts (non-special positions)."""

    n: int = 0
    ce_clean: float = 0.0
    ce_sae: float = 0.0
    ce_ablated: float = 0.0
    kl_sae: float = 0.0
    kl_ablated: float = 0.0

    def add(
        self,
        tokens: torch.Tensor,  # [b, T]
        keep: torch.Tensor,  # [b, T] positions whose input token is not special
        clean: torch.Tensor,  # [b, T, vocab] logits
        spliced: torch.Tensor,
        ablated: torch.Tensor,
    ) -> None:
        mask = keep[:, :-1]  # the last position predicts nothing
        targets = tokens[:, 1:][mask]
        log_p = torch.log_softmax(clean[:, :-1][mask].float(), dim=-1)  # [n, vocab]
        p = log_p.exp()
        for name, logits in (("sae", spliced), ("ablated", ablated)):
            log_q = torch.log_softmax(logits[:, :-1][mask].float(), dim=-1)
            ce = -log_q.gather(1, targets[:, None]).sum()
            kl = (p * (log_p - log_q)).sum()
            setattr(self, f"ce_{name}", getattr(self, f"ce_{name}") + float(ce))
            setattr(self, f"kl_{name}", getattr(self, f"kl_{name}") + float(kl))
        self.ce_clean += float(-log_p.gather(1, targets[:, None]).sum())
        self.n += int(mask.sum())


def _special_mask(tokens: torch.Tensor, special_ids: list[int]) -> torch.Tensor:
    """[b, T] True where the token is not BOS/EOS/pad."""
    return ~torch.isin(tokens, torch.tensor(special_ids, dtype=tokens.dtype))


def _reconstruct(sae: Any, acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(features [n, d_sae], reconstruction [n, d_in]) for activations [n, d_in]."""
    x = acts.to(sae.W_dec.device, sae.W_dec.dtype)
    feats = sae.encode(x)
    return feats, sae.decode(feats).to(acts.dtype)


@torch.no_grad()
def core_metrics(
    model: HookedModel,
    sae: Any,
    hook_name: str,
    contexts: torch.Tensor,  # [n_contexts, T]
    spec: EvaluationSet,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(SAE-Bench `eval_result_metrics`, `eval_result_unstructured`) of `sae` on `contexts`."""
    special = model.special_token_ids
    sums, losses = _Sums(), _Losses()
    n = contexts.shape[0]
    for first in range(0, n, spec.batch_size):
        batch = contexts[first : first + spec.batch_size]
        keep = _special_mask(batch, special)  # [b, T]
        n_ce = max(0, min(spec.n_ce_contexts - first, batch.shape[0]))
        if n_ce:
            ce_batch, ce_keep = batch[:n_ce], keep[:n_ce]
            captured: list[torch.Tensor] = []

            def tap(acts: torch.Tensor, captured: list[torch.Tensor] = captured) -> None:
                captured.append(acts.detach().float().cpu().clone())

            def splice(acts: torch.Tensor, keep: torch.Tensor = ce_keep) -> torch.Tensor:
                _, recon = _reconstruct(sae, acts.reshape(-1, acts.shape[-1]))
                new = recon.reshape(acts.shape).to(acts.dtype)
                return torch.where(keep[..., None].to(acts.device), new, acts)

            def ablate(acts: torch.Tensor, keep: torch.Tensor = ce_keep) -> torch.Tensor:
                return torch.where(keep[..., None].to(acts.device), 0.0, acts)

            clean = model.logits_with_hook(ce_batch, hook_name, tap)
            spliced = model.logits_with_hook(ce_batch, hook_name, splice)
            ablated = model.logits_with_hook(ce_batch, hook_name, ablate)
            losses.add(ce_batch, ce_keep, clean.cpu(), spliced.cpu(), ablated.cpu())
            del clean, spliced, ablated
            hook_acts = [captured[0]]
        else:
            hook_acts = []
        if batch.shape[0] > n_ce:  # the rest of the batch needs the model only to the hook
            hook_acts.append(model.forward_to_hook(batch[n_ce:], hook_name).float().cpu())
        acts = torch.cat(hook_acts)[keep]  # [tokens, d_in]
        feats, recon = _reconstruct(sae, acts)
        sums.add(acts, recon.float(), feats.float())
        if on_progress is not None:
            on_progress(min(first + spec.batch_size, n), n)
    if sums.n_tokens == 0:
        raise InvalidInput("the evaluation set has no tokens besides special ones")
    return _metrics(sae, sums, losses), {"feature_density_histogram": _density_histogram(sums)}


def _metrics(sae: Any, sums: _Sums, losses: _Losses) -> dict[str, Any]:
    n = sums.n_tokens
    assert sums.sum_x is not None and sums.fired is not None
    total_variance = sums.sum_sq_norm / n - float((sums.sum_x / n).pow(2).sum())
    mse = sums.sum_sq_residual / n
    if total_variance < 1e-10:
        explained = 1.0 if mse < 1e-10 else 0.0
    else:
        explained = 1.0 - mse / total_variance
    density = sums.fired.double() / n
    total_density = float(density.sum()) or 1.0
    metrics: dict[str, Any] = {
        "reconstruction_quality": {
            "explained_variance": explained,
            "mse": mse,
            "cossim": sums.sum_cos / n,
        },
        "shrinkage": {
            "l2_norm_in": sums.sum_norm_in / n,
            "l2_norm_out": sums.sum_norm_out / n,
            "l2_ratio": sums.sum_ratio / n,
            "relative_reconstruction_bias": (sums.sum_sq_norm_out / n) / (sums.sum_dot / n)
            if sums.sum_dot
            else math.nan,
        },
        "sparsity": {"l0": sums.sum_l0 / n, "l1": sums.sum_l1 / n},
        "token_stats": {
            "total_tokens_eval_reconstruction": losses.n,
            "total_tokens_eval_sparsity_variance": n,
        },
        "misc_metrics": {
            "freq_over_1_percent": float((density > 0.01).double().mean()),
            "freq_over_10_percent": float((density > 0.1).double().mean()),
            "normalized_freq_over_1_percent": float(density[density > 0.01].sum()) / total_density,
            "normalized_freq_over_10_percent": float(density[density > 0.1].sum()) / total_density,
            **_max_cosines(sae),
            "frac_alive": float((sums.fired > 0).double().mean()),
            # Interpedia's names for what the pages show: never fired, and fires on
            # more than 10% of tokens.
            "frac_dead": float((sums.fired == 0).double().mean()),
            "frac_dense": float((density > 0.1).double().mean()),
        },
    }
    if losses.n:
        ce_clean, ce_sae, ce_ablated = (
            losses.ce_clean / losses.n,
            losses.ce_sae / losses.n,
            losses.ce_ablated / losses.n,
        )
        kl_sae, kl_ablated = losses.kl_sae / losses.n, losses.kl_ablated / losses.n
        metrics["model_behavior_preservation"] = {
            "kl_div_score": (kl_ablated - kl_sae) / kl_ablated if kl_ablated else math.nan,
            "kl_div_with_ablation": kl_ablated,
            "kl_div_with_sae": kl_sae,
        }
        metrics["model_performance_preservation"] = {
            "ce_loss_score": (ce_ablated - ce_sae) / (ce_ablated - ce_clean)
            if ce_ablated != ce_clean
            else math.nan,
            "ce_loss_with_ablation": ce_ablated,
            "ce_loss_with_sae": ce_sae,
            "ce_loss_without_sae": ce_clean,
            "ce_loss_delta": ce_sae - ce_clean,
        }
    return metrics


def _max_cosines(sae: Any, block: int = 2048) -> dict[str, float]:
    """Mean over features of the largest cosine to any other feature (encoder, decoder)."""
    out = {}
    for name, weights in (("encoder", sae.W_enc.detach().T), ("decoder", sae.W_dec.detach())):
        unit = torch.nn.functional.normalize(weights.float().cpu(), dim=1)  # [d_sae, d_in]
        best = torch.empty(unit.shape[0])
        for start in range(0, unit.shape[0], block):
            cos = unit[start : start + block] @ unit.T  # [b, d_sae]
            rows = torch.arange(cos.shape[0])
            cos[rows, rows + start] = -math.inf  # not itself
            best[start : start + block] = cos.max(dim=1).values
        out[f"average_max_{name}_cosine_sim"] = float(best.mean())
    return out


def _density_histogram(sums: _Sums) -> dict[str, Any]:
    """Counts of features by log10 density, with the features that never fired apart."""
    assert sums.fired is not None
    density = sums.fired.double() / sums.n_tokens
    alive = density[density > 0].log10().clamp(min=LOG10_DENSITY_FLOOR)
    edges = torch.linspace(LOG10_DENSITY_FLOOR, 0.0, DENSITY_BINS + 1, dtype=torch.float64)
    counts = torch.histc(alive, bins=DENSITY_BINS, min=LOG10_DENSITY_FLOOR, max=0.0)
    return {
        "log10_density_edges": [round(float(e), 4) for e in edges],
        "counts": [int(c) for c in counts],
        "dead": int((sums.fired == 0).sum()),
    }


def sae_bench_output(
    eval_type: str,
    eval_config: dict[str, Any],
    metrics: dict[str, Any],
    sae: Any,
    *,
    details: list[dict[str, Any]] | None = None,
    unstructured: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An eval result in SAE-Bench's output schema (what Neuronpedia stores as `Eval.output`)."""
    cfg = sae.cfg.to_dict() if hasattr(sae.cfg, "to_dict") else dict(sae.cfg)
    metadata = cfg.get("metadata") or {}
    return {
        "eval_type_id": eval_type,
        "eval_config": eval_config,
        "eval_id": str(uuid.uuid4()),
        "datetime_epoch_millis": int(time.time() * 1000),
        # JSON has no NaN: an undefined metric (no letter to average) is stored as null.
        "eval_result_metrics": _json_safe(metrics),
        "eval_result_details": _json_safe(details or []),
        "eval_result_unstructured": _json_safe(unstructured or {}),
        "sae_bench_commit_hash": "interpedia",
        "sae_lens_id": metadata.get("sae_lens_id"),
        "sae_lens_release_id": metadata.get("sae_lens_release"),
        "sae_lens_version": importlib.metadata.version("sae-lens"),
        "sae_cfg_dict": _json_safe(cfg),
    }


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def evaluate_core(
    model: HookedModel,
    sae: Any,
    contexts: torch.Tensor,
    spec: EvaluationSet,
    *,
    corpus: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The `core` eval output of `sae` on the evaluation set `contexts`."""
    spec.check()
    hook_name = sae_hook(model, sae)
    metrics, unstructured = core_metrics(model, sae, hook_name, contexts, spec, on_progress)
    config = {
        "model_name": model.model_id,
        "llm_dtype": str(model.loaded.dtype).removeprefix("torch."),
        "batch_size_prompts": spec.batch_size,
        "n_eval_reconstruction_batches": math.ceil(spec.n_ce_contexts / spec.batch_size),
        "n_eval_sparsity_variance_batches": math.ceil(spec.n_contexts / spec.batch_size),
        "dataset": corpus,
        "context_size": spec.context_size,
        "compute_kl": spec.n_ce_contexts > 0,
        "compute_ce_loss": spec.n_ce_contexts > 0,
        "compute_l2_norms": True,
        "compute_sparsity_metrics": True,
        "compute_variance_metrics": True,
        "compute_featurewise_density_statistics": True,
        "compute_featurewise_weight_based_metrics": False,
        "exclude_special_tokens_from_reconstruction": True,
        "evaluation_set": {**asdict(spec), "from": "the corpus's last contexts"},
    }
    return sae_bench_output(CORE, config, metrics, sae, unstructured=unstructured)


async def store_evaluation(
    session: AsyncSession, model_id: str, source_id: str, output: dict[str, Any]
) -> None:
    """Keep `output` as the source's eval of its type, replacing an earlier run's."""
    statement = insert(Eval).values(
        model_id=model_id, source_id=source_id, type_name=output["eval_type_id"], output=output
    )
    await session.execute(
        statement.on_conflict_do_update(
            constraint="uq_evals_source_type",
            set_={"output": statement.excluded.output, "updated_at": func.now()},
        )
    )
