"""End-to-end domain calls: corpus → activations → SAE, and SAE → dashboards / concepts.

These take plain arguments and return plain results so the CLI, a job or a test can
call them; storing runs, metrics and dashboards in the database is the caller's job
(pass `on_metrics` to receive the training time series as it is produced).
Every input check happens before the model runs.
"""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from sae_lens import SAE

from interpedia_core.errors import InvalidInput
from interpedia_trainer.activations import (
    cache_activations,
    check_enough_tokens,
    hook_activations,
    resume_context,
    stream_activations,
)
from interpedia_trainer.concepts import ConceptResult, score_concepts
from interpedia_trainer.corpus import read_texts, tokenize_corpus, training_contexts
from interpedia_trainer.dashboards import DashboardOptions, FeatureDashboard, compute_dashboards
from interpedia_trainer.distributed import SINGLE_PROCESS, DataParallel
from interpedia_trainer.metrics import make_evaluator
from interpedia_trainer.model_runtime import HookedModel
from interpedia_trainer.plots import plot_training
from interpedia_trainer.training import (
    MetricsCallback,
    SAETrainingLoop,
    TrainingConfig,
    TrainResult,
)

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, dict[str, float]], None]


def train_from_corpus(
    cfg: TrainingConfig,
    model: HookedModel,
    corpus: str | Path,
    out_dir: Path,
    *,
    cache_dir: Path | None = None,
    max_contexts: int | None = None,
    n_eval_contexts: int = 8,
    model_batch_size: int = 8,
    on_metrics: MetricsCallback | None = None,
    on_progress: Progress | None = None,
    on_stage: Callable[[str], None] | None = None,
    resume: bool = True,
    parallel: DataParallel = SINGLE_PROCESS,
) -> TrainResult:
    """Train an SAE on a corpus's activations at `cfg.hook_name`; write it to `out_dir`.

    The last `n_eval_contexts` contexts are held out: their activations give the
    reconstruction metrics and their tokens the CE loss recovered (rank 0 only). With
    `cache_dir` the activations are written once and replayed for every epoch (and reused
    by later runs). Under torchrun each rank runs the model on its own share of the
    training contexts (every world_size-th one) and keeps its own cache.
    A stop request (`interpedia_core.stopping`) ends training between steps, on all ranks
    together, with a checkpoint, and the resumed run (on any number of ranks) continues
    from its step and its place in the data.
    """
    stage = on_stage or (lambda _msg: None)
    model.check_d_in(cfg.d_in, cfg.hook_name)
    cfg.model_name = cfg.model_name or model.model_id
    cfg.dataset_path = cfg.dataset_path or str(corpus)
    cfg.validate()
    train_ctx, eval_ctx = training_contexts(
        corpus,
        model.tokenizer,
        context_size=cfg.context_size,
        prepend_bos=cfg.prepend_bos,
        max_contexts=max_contexts,
        n_eval_contexts=n_eval_contexts,
    )
    n_eval = eval_ctx.shape[0]
    loop = SAETrainingLoop(cfg, out_dir, parallel)
    rank, world = parallel.rank, parallel.world_size
    train_ctx = train_ctx[rank::world]  # this rank's share of the stream
    check_enough_tokens(train_ctx, loop.local_batch_size)
    if resume and loop.load_checkpoint():
        stage(f"resumed at step {loop.n_steps} ({loop.n_tokens:,} tokens)")

    evaluator = None
    if n_eval and parallel.is_main:
        stage("held-out activations")
        held_out = torch.cat(
            list(hook_activations(model, cfg.hook_name, eval_ctx, model_batch_size, True))
        )
        evaluator = make_evaluator(
            held_out,
            model=model,
            tokens=eval_ctx[:4],
            hook_name=cfg.hook_name,
            dense_threshold=cfg.dense_threshold,
        )
    seen = loop.n_tokens // world  # tokens this rank's share already gave (on resume)
    if cache_dir is not None:
        stage("caching activations")
        if world > 1:
            cache_dir = Path(cache_dir) / f"rank-{rank}-of-{world}"
        cache = cache_activations(
            model, cfg.hook_name, train_ctx, cache_dir, model_batch_size=model_batch_size
        )
        batches = cache.batches(loop.local_batch_size, seed=cfg.seed, skip_tokens=seen)
    else:
        batches = stream_activations(
            model,
            cfg.hook_name,
            train_ctx,
            batch_size=loop.local_batch_size,
            model_batch_size=model_batch_size,
            seed=cfg.seed + rank,
            start_context=resume_context(train_ctx, model.special_token_ids, seen),
        )
    stage("training")
    with loop.checkpoint_on_stop():
        result = loop.run(
            batches, evaluator=evaluator, on_metrics=on_metrics, on_progress=on_progress
        )
    if result.history and parallel.is_main:
        plot_training(
            result.history,
            Path(out_dir) / "training.png",
            title=f"{cfg.architecture} {cfg.hook_name} d_sae={cfg.resolved_d_sae}",
        )
    return result


def load_sae(path: str | Path, device: str = "cpu") -> Any:
    """A SAELens SAE from a folder; `InvalidInput` if it is not one."""
    path = Path(path)
    if not (path / "cfg.json").is_file():
        raise InvalidInput(f"{path} is not an SAE folder (no cfg.json)")
    return SAE.load_from_disk(path, device=device)


def sae_hook(model: HookedModel, sae: Any) -> str:
    """The hook the SAE reads; `InvalidInput` unless the model has it at the SAE's width."""
    hook_name = sae.cfg.metadata.hook_name
    if not hook_name:
        raise InvalidInput("the SAE's cfg.json has no metadata.hook_name")
    model.check_d_in(sae.cfg.d_in, hook_name, "SAE d_in")
    return hook_name


def dashboards_from_corpus(
    model: HookedModel,
    sae: Any,
    corpus: str | Path,
    *,
    n_prompts: int = 2048,  # as POST /v1/dashboards
    context_size: int = 128,
    prepend_bos: bool = True,
    feature_range: tuple[int, int] | None = None,
    options: DashboardOptions | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    checkpoint: Path | None = None,
) -> list[FeatureDashboard]:
    """Dashboards for an SAE over the first `n_prompts` contexts of a corpus.

    `checkpoint`: where a stopped pass is saved, and resumed from by the rerun.
    """
    hook_name = sae_hook(model, sae)
    if n_prompts <= 0:
        raise InvalidInput(f"n_prompts must be positive, got {n_prompts}")
    tokens = tokenize_corpus(
        corpus,
        model.tokenizer,
        context_size=context_size,
        prepend_bos=prepend_bos,
        max_contexts=n_prompts,
    )
    return compute_dashboards(
        lambda batch: model.forward_to_hook(batch, hook_name),
        sae,
        tokens,
        W_U=model.W_U,
        feature_range=feature_range,
        ignore_token_ids=model.special_token_ids,
        options=options,
        on_progress=on_progress,
        checkpoint=checkpoint,
    )


def concepts_from_corpus(
    model: HookedModel,
    sae: Any,
    concepts: dict[str, list[str]],
    corpus: str | Path,
    *,
    base_documents: int = 20,
    top_n: int = 5,
) -> list[ConceptResult]:
    """Each concept's `top_n` most specific features, against a corpus's first documents.

    The CLI (`interpedia concepts`) and the `concept_scores` job both call this, so a
    table printed locally and one read back from the API are computed the same way.
    """
    hook_name = sae_hook(model, sae)
    if base_documents <= 0 or top_n <= 0:
        raise InvalidInput(
            f"base_documents and top_n must be positive, got {base_documents} and {top_n}"
        )
    base = list(read_texts(corpus, max_documents=base_documents))
    return score_concepts(
        lambda batch: model.forward_to_hook(batch, hook_name),
        sae,
        model.tokenizer,
        concepts,
        base,
        top_n=top_n,
        ignore_token_ids=model.special_token_ids,
    )
