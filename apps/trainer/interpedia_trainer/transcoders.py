"""Per-layer transcoders (PLTs): one pass over the corpus trains a transcoder per layer.

A transcoder reads a layer's MLP input (the output of its pre-MLP norm, `blocks.{i}.mlp.
hook_in`) and predicts the MLP's output (`blocks.{i}.mlp.hook_out`): a sparse, readable
stand-in for the MLP that circuit-tracer's replacement model and attribution graphs use.

SAELens 6 has transcoder inference classes but no transcoder training classes, so each
layer trains with the trainer's own loop (`training.SAETrainingLoop`, steps with a target)
over the SAELens training SAE of the chosen activation:

    relu      StandardTrainingSAE (L1 on activations × decoder norms)  → `transcoder`
    jumprelu  JumpReLUTrainingSAE (L0 with straight-through threshold) → `jumprelu_transcoder`
    topk      BatchTopKTrainingSAE (k per token on average, AuxK dead-feature revival),
              whose inference form is a JumpReLU at the learned threshold → `jumprelu_transcoder`
              (circuit-tracer and SAELens read ReLU and JumpReLU transcoders, not TopK)

With `skip`, a linear skip connection W_skip [d_model, d_model] is first fitted in closed
form, by ridge regression of the MLP output on its input over the first training batches
(`SKIP_FIT_TOKENS_PER_DIM` tokens per input dimension: one batch of 512 tokens cannot pin
down a 576 × 576 map), and kept fixed; the features then learn what the linear map misses
(Paulo et al. 2025 train it jointly; a fixed least-squares skip is the smallest correct
version, costs one solve, and on SmolLM2 alone explains most of several layers' MLP output).

Every model batch runs ONE forward that stops after the deepest chosen layer and feeds
every layer's (in, out) pairs, shuffled together, to that layer's loop. The set is saved
in circuit-tracer's layout (`interpedia_formats.transcoder_set`) plus a SAELens folder per
layer, whole or not at all. A stop request checkpoints every layer's loop; the rerun
resumes all of them from the same step.
"""

import dataclasses
import itertools
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sae_lens import (
    SAE,
    JumpReLUSkipTranscoder,
    JumpReLUSkipTranscoderConfig,
    JumpReLUTranscoder,
    JumpReLUTranscoderConfig,
    SkipTranscoder,
    SkipTranscoderConfig,
    Transcoder,
    TranscoderConfig,
)
from sae_lens.saes.sae import SAEMetadata
from safetensors.torch import load_file, save_file

from interpedia_core import stopping
from interpedia_core.errors import InvalidInput
from interpedia_formats.transcoder_set import (
    input_hook,
    output_hook,
    saelens_layer_dir,
    write_transcoder_set,
)
from interpedia_trainer.activations import check_enough_tokens, resume_context
from interpedia_trainer.corpus import training_contexts
from interpedia_trainer.model_runtime import HookedModel
from interpedia_trainer.training import SAETrainingLoop, TrainingConfig

logger = logging.getLogger(__name__)

ARCHITECTURE = "transcoder"
# our activation name → the SAELens training architecture that trains it
ACTIVATIONS = {"relu": "standard", "jumprelu": "jumprelu", "topk": "batchtopk"}
_SKIP_FILE = "w_skip.safetensors"
# The skip's least-squares fit reads this many tokens per input dimension (held in memory
# once, then trained on as usual): well-determined, not so many that the first batches of
# every layer crowd memory (8 × 576 tokens × 30 layers × in and out ≈ 0.6 GB).
SKIP_FIT_TOKENS_PER_DIM = 8

# (inference SAE has a threshold, skip) → SAELens transcoder classes
_SAELENS_CLASSES: dict[tuple[bool, bool], tuple[type[Transcoder], type[TranscoderConfig]]] = {
    (False, False): (Transcoder, TranscoderConfig),
    (False, True): (SkipTranscoder, SkipTranscoderConfig),
    (True, False): (JumpReLUTranscoder, JumpReLUTranscoderConfig),
    (True, True): (JumpReLUSkipTranscoder, JumpReLUSkipTranscoderConfig),
}

LayerMetrics = Callable[[int, dict[str, float]], None]
Progress = Callable[[int, int, dict[str, float]], None]


def parse_layers(text: str, n_layers: int) -> list[int]:
    """`all`, `3`, `0,2,5` or `0-3` → sorted layer indices; `InvalidInput` out of range."""
    text = text.strip()
    if text == "all":
        return list(range(n_layers))
    layers: set[int] = set()
    try:
        for part in text.split(","):
            first, _, last = part.partition("-")
            start = int(first)
            stop = int(last) if last else start
            layers.update(range(start, stop + 1))
    except ValueError:
        raise InvalidInput(f"--layers {text!r}: use all, 3, 0,2,5 or 0-3") from None
    if not layers:
        raise InvalidInput(f"--layers {text!r} names no layer")
    wrong = sorted(layer for layer in layers if not 0 <= layer < n_layers)
    if wrong:
        raise InvalidInput(
            f"--layers {text!r}: layer {wrong[0]} is out of range; the model has "
            f"{n_layers} layers (0..{n_layers - 1})"
        )
    return sorted(layers)


@dataclass(frozen=True)
class TranscoderSetResult:
    folder: Path
    layers: list[int]
    d_transcoder: int
    n_tokens: int  # tokens each layer trained on
    seconds: float
    forward_seconds: float  # of which in the model's forward (collecting pairs)
    per_layer: dict[int, dict[str, float]]  # final metrics: fvu, l0, dead_fraction, ...

    @property
    def tokens_per_second(self) -> float:
        """Tokens per second for all layers together (one token trains every layer)."""
        return self.n_tokens / self.seconds if self.seconds > 0 else float("inf")

    @property
    def forward_share(self) -> float:
        return self.forward_seconds / self.seconds if self.seconds > 0 else 0.0


def layer_config(base: TrainingConfig, activation: str, layer: int) -> TrainingConfig:
    """One layer's training config: the activation's SAELens architecture at the MLP input."""
    if activation not in ACTIVATIONS:
        raise InvalidInput(
            f"unknown transcoder activation {activation!r}; choose one of {sorted(ACTIVATIONS)}"
        )
    cfg = dataclasses.replace(
        base,
        architecture=ACTIVATIONS[activation],
        hook_name=input_hook(layer),
        transcoder=True,
        # b_dec lives in the output's space: it starts at the mean MLP output (set from the
        # first buffer), not at the mean input; inputs are not rescaled.
        b_dec_init="zeros",
        normalize_activations="none",
    )
    cfg.validate()
    return cfg


def _pairs(
    model: HookedModel,
    layers: list[int],
    contexts: torch.Tensor,  # [n, T]
    model_batch_size: int,
    timer: list[float],
) -> Iterator[dict[int, tuple[torch.Tensor, torch.Tensor]]]:
    """Per model batch: {layer: (mlp_in, mlp_out)} of [tokens, d_model], special tokens out.

    One forward, stopped after the deepest layer, serves every layer. `timer[0]` adds up
    the seconds spent in the model; a stop request ends the stream between batches.
    """
    special = torch.tensor(model.special_token_ids, dtype=torch.long)
    names = [hook for layer in layers for hook in (input_hook(layer), output_hook(layer))]
    for first in range(0, contexts.shape[0], model_batch_size):
        stopping.check()
        batch = contexts[first : first + model_batch_size]
        started = time.perf_counter()
        acts = model.loaded.run_hooks(batch.to(model.device), names)
        timer[0] += time.perf_counter() - started
        keep = ~torch.isin(batch, special)  # [b, T]
        yield {
            layer: (
                acts[input_hook(layer)].float().cpu()[keep],
                acts[output_hook(layer)].float().cpu()[keep],
            )
            for layer in layers
        }


def _batches(
    pairs: Iterator[dict[int, tuple[torch.Tensor, torch.Tensor]]],
    layers: list[int],
    batch_size: int,
    buffer_batches: int,
    seed: int,
) -> Iterator[dict[int, tuple[torch.Tensor, torch.Tensor]]]:
    """Shuffled training batches for every layer at once: one permutation for all layers,
    so a step of every layer sees the same tokens (fill, shuffle, emit half, refill)."""
    g = torch.Generator().manual_seed(seed)
    capacity = batch_size * buffer_batches
    buffer: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for block in pairs:
        buffer = {
            layer: (torch.cat([buffer[layer][0], x]), torch.cat([buffer[layer][1], y]))
            if layer in buffer
            else (x, y)
            for layer, (x, y) in block.items()
        }
        n = buffer[layers[0]][0].shape[0]
        if n < capacity:
            continue
        order = torch.randperm(n, generator=g)
        buffer = {layer: (x[order], y[order]) for layer, (x, y) in buffer.items()}
        half = n // 2 // batch_size * batch_size
        for i in range(0, half, batch_size):
            yield {
                layer: (x[i : i + batch_size], y[i : i + batch_size])
                for layer, (x, y) in buffer.items()
            }
        buffer = {layer: (x[half:], y[half:]) for layer, (x, y) in buffer.items()}


def spread_contexts(contexts: torch.Tensor, total_tokens: int) -> torch.Tensor:
    """The contexts training will read, evenly spaced over the corpus when it holds more.

    A set trains on a few tens of thousands of tokens: the corpus's first contexts would be
    its first documents only (SOTU's are 1790s speeches), and the transcoders would then
    fit today's text worse (held-out FVU on the corpus's last contexts, layers 3 and 20:
    0.91 and 0.57 from the first contexts, 0.74 and 0.47 from spread ones). The selection
    is deterministic, so a resumed run reads the same contexts.
    """
    n = contexts.shape[0]
    needed = -(-total_tokens // (contexts.shape[1] - 1))  # at most one BOS per context
    if needed >= n:
        return contexts
    return contexts[torch.linspace(0, n - 1, needed).round().long()]


def fit_skip(x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-3) -> torch.Tensor:
    """W_skip [d_out, d_in] minimising ‖y - x W_skipᵀ‖² + λ‖W_skip‖² (λ scaled to the data).

    Solved in float64: the Gram matrix of MLP inputs is badly conditioned in float32.
    """
    x, y = x.double(), y.double()
    gram = x.T @ x  # [d_in, d_in]
    scale = ridge * gram.diagonal().mean().clamp_min(1e-12)
    eye = torch.eye(x.shape[1], dtype=torch.float64)
    return torch.linalg.solve(gram + scale * eye, x.T @ y).T.float()


def fit_skips(
    batches: Iterator[dict[int, tuple[torch.Tensor, torch.Tensor]]],
    n_tokens: int,
) -> tuple[dict[int, torch.Tensor], Iterator[dict[int, tuple[torch.Tensor, torch.Tensor]]]]:
    """Every layer's W_skip fitted on the first `n_tokens` (whole batches) of the stream,
    and the stream again from its start: the batches the fit read are trained on too."""
    first: list[dict[int, tuple[torch.Tensor, torch.Tensor]]] = []
    seen = 0
    while seen < n_tokens:
        first.append(next(batches))
        seen += next(iter(first[-1].values()))[0].shape[0]
    skips = {
        layer: fit_skip(
            torch.cat([batch[layer][0] for batch in first]),
            torch.cat([batch[layer][1] for batch in first]),
        )
        for layer in first[0]
    }
    return skips, itertools.chain(first, batches)


def transcoder_tensors(
    sae: SAE[Any], w_skip: torch.Tensor | None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(circuit-tracer layer tensors, SAELens transcoder state) of one trained layer.

    circuit-tracer keeps W_enc as [d_transcoder, d_model] and the JumpReLU threshold
    under `activation_function.threshold`; SAELens keeps W_enc as [d_model, d_sae].
    """
    state = {k: v.detach().float().cpu() for k, v in sae.state_dict().items()}
    saelens = {k: state[k] for k in ("W_enc", "W_dec", "b_enc", "b_dec")}
    circuit = {
        "W_enc": state["W_enc"].T.contiguous(),
        "W_dec": state["W_dec"],
        "b_enc": state["b_enc"],
        "b_dec": state["b_dec"],
    }
    if "threshold" in state:
        saelens["threshold"] = circuit["activation_function.threshold"] = state["threshold"]
    if w_skip is not None:
        saelens["W_skip"] = circuit["W_skip"] = w_skip.float().cpu()
    return circuit, saelens


def _save_saelens_layer(
    folder: Path, sae: SAE[Any], saelens_state: dict[str, torch.Tensor], layer: int
) -> None:
    sae_class, cfg_class = _SAELENS_CLASSES[
        ("threshold" in saelens_state, "W_skip" in saelens_state)
    ]
    metadata = sae.cfg.metadata.to_dict()
    metadata.update(hook_name=input_hook(layer), hook_name_out=output_hook(layer))
    cfg = cfg_class(
        d_in=sae.cfg.d_in,
        d_sae=sae.cfg.d_sae,
        d_out=int(saelens_state["b_dec"].shape[0]),
        dtype="float32",
        device="cpu",
        apply_b_dec_to_input=False,
        metadata=SAEMetadata(**metadata),
    )
    transcoder = sae_class(cfg)
    transcoder.load_state_dict(saelens_state)
    transcoder.save_model(saelens_layer_dir(folder, layer))


def fraction_of_variance_unexplained(
    sae: SAE[Any], w_skip: torch.Tensor | None, x: torch.Tensor, y: torch.Tensor
) -> tuple[float, float]:
    """(FVU of the MLP output, mean L0) of one layer's inference transcoder on pairs."""
    with torch.no_grad():
        acts = sae.encode(x)  # [n, d_sae]
        prediction = sae.decode(acts)
        if w_skip is not None:
            prediction = prediction + x @ w_skip.T
        error = (y - prediction).pow(2).sum()
        variance = (y - y.mean(0)).pow(2).sum().clamp_min(1e-12)
        return float(error / variance), float((acts > 0).float().sum(-1).mean())


def _step_layer(
    loop: SAETrainingLoop,
    layer: int,
    x: torch.Tensor,  # [batch, d_model] MLP input
    y: torch.Tensor,  # [batch, d_model] MLP output
    w_skip: torch.Tensor | None,
    on_metrics: LayerMetrics | None,
    on_progress: Progress | None,
) -> None:
    """One step of one layer's transcoder on what the skip misses; the first starts b_dec."""
    target = y if w_skip is None else y - x @ w_skip.T
    if loop.n_steps == 0:
        with torch.no_grad():
            loop.sae.b_dec.copy_(target.mean(0))
    metrics = loop.step(x, target)
    total = loop.cfg.total_steps * loop.cfg.batch_size
    if loop.n_steps % loop.cfg.log_every_steps == 0 or loop.n_tokens >= total:
        loop.history.append(metrics)
        if on_metrics is not None:
            on_metrics(layer, metrics)
    if on_progress is not None:
        on_progress(loop.n_tokens, total, {**metrics, "layer": float(layer)})


def train_transcoder_set(
    base: TrainingConfig,
    model: HookedModel,
    corpus: str | Path,
    out: Path,
    *,
    layers: list[int],
    activation: str = "topk",
    skip: bool = False,
    max_contexts: int | None = None,
    n_eval_contexts: int = 8,
    model_batch_size: int = 8,
    buffer_batches: int = 4,
    scan: str | None = None,
    resume: bool = True,
    on_metrics: LayerMetrics | None = None,
    on_progress: Progress | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> TranscoderSetResult:
    """Train one transcoder per layer in `layers` from one pass of forwards; write the set.

    `base` carries the shared options (d_sae / expansion_factor, k, l1, l0, lr, batch size,
    total tokens, context size, seed); `layer_config` derives each layer's. The last
    `n_eval_contexts` contexts are held out for each layer's final FVU. Checkpoints live
    in `{out}.checkpoints` until the set is written.
    """
    stage = on_stage or (lambda _msg: None)
    if base.d_in != model.d_model:
        raise InvalidInput(f"d_in {base.d_in} does not match the model's d_model {model.d_model}")
    if not layers:
        raise InvalidInput("train at least one layer")
    configs = {layer: layer_config(base, activation, layer) for layer in layers}
    train_ctx, eval_ctx = training_contexts(
        corpus,
        model.tokenizer,
        context_size=base.context_size,
        prepend_bos=base.prepend_bos,
        max_contexts=max_contexts,
        n_eval_contexts=n_eval_contexts,
    )
    check_enough_tokens(train_ctx, base.batch_size)
    # The shuffle buffer holds tokens read but not yet trained on when training ends.
    train_ctx = spread_contexts(train_ctx, base.total_tokens + base.batch_size * buffer_batches)

    out = Path(out)
    work = out.with_name(f"{out.name}.checkpoints")
    loops = {layer: SAETrainingLoop(cfg, work / f"layer_{layer}") for layer, cfg in configs.items()}
    skips: dict[int, torch.Tensor | None] = dict.fromkeys(layers)
    # Resume only when every layer has a checkpoint (they are written together).
    resumed = resume and all(loop.checkpoint_dir.is_dir() for loop in loops.values())
    if resumed:
        for loop in loops.values():
            loop.load_checkpoint()
        if skip:
            skips = {
                layer: load_file(str(loops[layer].out_dir / _SKIP_FILE))["W_skip"]
                for layer in layers
            }
    first_loop = loops[layers[0]]
    if resumed:
        stage(f"resumed at step {first_loop.n_steps} ({first_loop.n_tokens:,} tokens)")
    start_context = resume_context(train_ctx, model.special_token_ids, first_loop.n_tokens)

    timer = [0.0]
    total = base.total_steps * base.batch_size
    started = time.perf_counter()

    def epochs() -> Iterator[dict[int, tuple[torch.Tensor, torch.Tensor]]]:
        epoch = train_ctx[start_context:]
        while True:
            yield from _pairs(model, layers, epoch, model_batch_size, timer)
            epoch = train_ctx

    batches = _batches(epochs(), layers, base.batch_size, buffer_batches, base.seed)
    if skip and not resumed:
        # A stop in here leaves no checkpoint (no step was taken): the rerun starts afresh.
        stage("fitting the skip connections")
        fit_tokens = min(SKIP_FIT_TOKENS_PER_DIM * base.d_in, total)
        fitted, batches = fit_skips(batches, fit_tokens)
        for layer, w_skip in fitted.items():
            skips[layer] = w_skip
            loops[layer].out_dir.mkdir(parents=True, exist_ok=True)
            save_file({"W_skip": w_skip}, str(loops[layer].out_dir / _SKIP_FILE))
    stage(f"training {len(layers)} layers")
    try:
        while first_loop.n_tokens < total:
            stopping.check()
            batch = next(batches)  # every layer steps on it: all stay at the same step
            for layer, (x, y) in batch.items():
                _step_layer(loops[layer], layer, x, y, skips[layer], on_metrics, on_progress)
            every = base.checkpoint_every_steps
            if every and first_loop.n_steps % every == 0:
                for loop in loops.values():
                    loop.save_checkpoint()
    except stopping.Stopped as exc:
        for loop in loops.values():
            loop.save_checkpoint()
        raise exc.at(
            f"at step {first_loop.n_steps} ({first_loop.n_tokens:,} tokens); checkpoints in {work}"
        ) from None
    seconds = time.perf_counter() - started

    stage("held-out fraction of variance unexplained")
    held_out: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {
        n: ([], []) for n in layers
    }
    for block in _pairs(model, layers, eval_ctx, model_batch_size, [0.0]):
        for layer, (x, y) in block.items():
            held_out[layer][0].append(x)
            held_out[layer][1].append(y)
    per_layer: dict[int, dict[str, float]] = {}
    circuit: dict[int, dict[str, torch.Tensor]] = {}
    inference: dict[int, tuple[SAE[Any], dict[str, torch.Tensor]]] = {}
    for layer in layers:
        loop = loops[layer]
        sae = loop.inference_sae()
        final = loop.final_metrics()
        if held_out[layer][0]:
            x, y = torch.cat(held_out[layer][0]), torch.cat(held_out[layer][1])
            fvu, l0 = fraction_of_variance_unexplained(sae, skips[layer], x, y)
            final.update(fvu=fvu, l0=l0)
        per_layer[layer] = final
        if on_metrics is not None:
            on_metrics(
                layer, {"tokens": float(loop.n_tokens), "step": float(loop.n_steps), **final}
            )
        circuit[layer], saelens = transcoder_tensors(sae, skips[layer])
        inference[layer] = (sae, saelens)

    def write_layers(folder: Path) -> None:
        for layer, (sae, saelens) in inference.items():
            _save_saelens_layer(folder, sae, saelens, layer)
        (folder / "metrics.json").write_text(
            json.dumps(
                {
                    "per_layer": {str(k): v for k, v in per_layer.items()},
                    "history": {str(k): loops[k].history for k in layers},
                },
                indent=2,
            )
        )

    d_transcoder = base.resolved_d_sae
    write_transcoder_set(
        out,
        circuit,
        scan=scan or out.name,
        model_name=model.model_id,
        extra_config={
            "interpedia_training": {
                **{k: v for k, v in dataclasses.asdict(base).items() if k != "device"},
                "activation": activation,
                "skip": skip,
                "layers": layers,
            }
        },
        write_more=write_layers,
    )
    shutil.rmtree(work, ignore_errors=True)
    return TranscoderSetResult(
        folder=out,
        layers=layers,
        d_transcoder=d_transcoder,
        n_tokens=first_loop.n_tokens,
        seconds=seconds,
        forward_seconds=timer[0],
        per_layer=per_layer,
    )
