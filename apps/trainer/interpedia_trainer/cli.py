"""`interpedia train | dashboards | concepts` (mounted through the `interpedia.cli` entry point).

Commands parse flags (each also readable from an `INTERPEDIA_TRAINER_*` variable), call
the domain functions in `pipeline` / `concepts`, and draw progress bars. Errors from the
domain (`InterpediaError`) are printed as one line by `interpedia_core.cli.main`.
"""

import dataclasses
import json
import os
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from tqdm import tqdm

from interpedia_core.errors import InterpediaError, InvalidInput

commands = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
service = typer.Typer(name="interpedia-trainer", no_args_is_help=True)

_ENV = "INTERPEDIA_TRAINER_"
ModelOpt = Annotated[str, typer.Option("--model", envvar=f"{_ENV}MODEL", help="Model id.")]
CorpusOpt = Annotated[
    str,
    typer.Option("--corpus", envvar=f"{_ENV}CORPUS", help="Folder of .txt, .jsonl, or dataset."),
]
DeviceOpt = Annotated[str, typer.Option("--device", envvar=f"{_ENV}DEVICE")]
DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_CORPUS = ".cache/corpora/sotu"


def _offline_for_packaged(model: str) -> None:
    # The packaged model is a local snapshot; without this transformers probes the hub.
    if model == DEFAULT_MODEL:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _load_model(model: str, device: str) -> Any:
    from interpedia_trainer.model_runtime import load_hooked_model

    return load_hooked_model(model, device=device)


def _parse_range(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        start, stop = (int(p) for p in text.split(":"))
    except ValueError as exc:
        raise InvalidInput(f"--features must look like START:STOP, got {text!r}") from exc
    return start, stop


@commands.command()
def train(
    out: Annotated[Path, typer.Option(help="Output folder (the SAELens SAE).")],
    config: Annotated[
        Path | None, typer.Option(help="JSON file of TrainingConfig fields; flags override it.")
    ] = None,
    hook: Annotated[str | None, typer.Option(help="Hook, e.g. blocks.6.hook_resid_post.")] = None,
    architecture: Annotated[
        str | None, typer.Option(help="standard|topk|batchtopk|jumprelu")
    ] = None,
    d_sae: Annotated[int | None, typer.Option()] = None,
    expansion_factor: Annotated[int | None, typer.Option()] = None,
    k: Annotated[float | None, typer.Option(help="Latents per token (TopK family).")] = None,
    l1: Annotated[float | None, typer.Option(help="L1 coefficient (standard).")] = None,
    l0: Annotated[float | None, typer.Option(help="L0 coefficient (jumprelu).")] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    lr_scheduler: Annotated[str | None, typer.Option(help="constant|cosineannealing|...")] = None,
    lr_warm_up_steps: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    total_tokens: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    dtype: Annotated[str | None, typer.Option()] = None,
    context_size: Annotated[int | None, typer.Option()] = None,
    eval_every: Annotated[int | None, typer.Option(help="Held-out eval every N steps.")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="Checkpoint every N steps.")] = None,
    max_contexts: Annotated[int | None, typer.Option(help="Use at most N corpus contexts.")] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Cache activations here and replay them.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from out/checkpoints/latest.")] = True,
    model: ModelOpt = DEFAULT_MODEL,
    corpus: CorpusOpt = DEFAULT_CORPUS,
    device: DeviceOpt = "cpu",
) -> None:
    """Train an SAE on a corpus's activations; writes a SAELens folder plus training.png."""
    from interpedia_trainer.pipeline import train_from_corpus
    from interpedia_trainer.training import TrainingConfig

    _offline_for_packaged(model)
    torch.set_flush_denormal(True)  # denormals make CPU steps several times slower
    values: dict[str, Any] = {}
    if config is not None:
        try:
            values = json.loads(config.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"cannot read config {config}: {exc}") from exc
    flags = {
        "hook_name": hook,
        "architecture": architecture,
        "d_sae": d_sae,
        "expansion_factor": expansion_factor,
        "k": k,
        "l1_coefficient": l1,
        "l0_coefficient": l0,
        "lr": lr,
        "lr_scheduler": lr_scheduler,
        "lr_warm_up_steps": lr_warm_up_steps,
        "batch_size": batch_size,
        "total_tokens": total_tokens,
        "seed": seed,
        "dtype": dtype,
        "context_size": context_size,
        "eval_every_steps": eval_every,
        "checkpoint_every_steps": checkpoint_every,
    }
    values.update({key: v for key, v in flags.items() if v is not None})
    values["device"] = device
    typer.echo(f"loading {model}")
    hooked = _load_model(model, device)
    values.setdefault("d_in", hooked.d_model)
    cfg = TrainingConfig.from_dict(values)
    cfg.validate()
    bar = tqdm(total=cfg.total_steps * cfg.batch_size, unit="tok", unit_scale=True, desc="train")

    def progress(done: int, total: int, metrics: dict[str, float]) -> None:
        bar.n = done
        bar.set_postfix(
            loss=f"{metrics['loss']:.4g}",
            l0=f"{metrics['l0']:.1f}",
            ev=f"{metrics['explained_variance']:.3f}",
            refresh=False,
        )
        bar.refresh()

    try:
        result = train_from_corpus(
            cfg,
            hooked,
            corpus,
            out,
            cache_dir=cache_dir,
            max_contexts=max_contexts,
            on_progress=progress,
            on_stage=lambda s: bar.set_description(s),
            resume=resume,
        )
    finally:
        bar.close()
    typer.echo(
        f"saved {result.sae_path} ({result.n_tokens} tokens, "
        f"{result.tokens_per_second:.0f} tokens/s)"
    )
    for key, value in sorted(result.final_metrics.items()):
        typer.echo(f"  {key:28s} {value:.5g}")


@commands.command()
def dashboards(
    sae: Annotated[Path, typer.Option(help="SAE folder (cfg.json + weights).")],
    out: Annotated[Path, typer.Option(help="Write the dashboards here as JSON.")],
    n_prompts: Annotated[int, typer.Option(help="Corpus contexts to scan.")] = 256,
    context_size: Annotated[int, typer.Option()] = 128,
    features: Annotated[str | None, typer.Option(help="Feature range START:STOP.")] = None,
    batch_size: Annotated[int, typer.Option(help="Prompts per model batch.")] = 16,
    n_top: Annotated[int, typer.Option()] = 20,
    model: ModelOpt = DEFAULT_MODEL,
    corpus: CorpusOpt = DEFAULT_CORPUS,
    device: DeviceOpt = "cpu",
) -> None:
    """Compute feature dashboards in one pass over the corpus; write them as JSON."""
    from interpedia_trainer.dashboards import DashboardOptions
    from interpedia_trainer.pipeline import dashboards_from_corpus, load_sae

    _offline_for_packaged(model)
    feature_range = _parse_range(features)
    loaded_sae = load_sae(sae, device)
    hooked = _load_model(model, device)
    bar = tqdm(total=n_prompts, unit="prompt", desc="dashboards")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        result = dashboards_from_corpus(
            hooked,
            loaded_sae,
            corpus,
            n_prompts=n_prompts,
            context_size=context_size,
            feature_range=feature_range,
            options=DashboardOptions(batch_size=batch_size, n_top=n_top),
            on_progress=progress,
        )
    finally:
        bar.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([dataclasses.asdict(d) for d in result]))
    live = sum(d.max_activation > 0 for d in result)
    typer.echo(f"wrote {len(result)} dashboards ({live} features fired) to {out}")


@commands.command()
def concepts(
    sae: Annotated[Path, typer.Option(help="SAE folder.")],
    concept: Annotated[
        list[Path] | None, typer.Option(help="Concept file (one example per line); repeatable.")
    ] = None,
    top_n: Annotated[int, typer.Option()] = 5,
    base_documents: Annotated[int, typer.Option(help="Base corpus documents to read.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    model: ModelOpt = DEFAULT_MODEL,
    corpus: CorpusOpt = DEFAULT_CORPUS,
    device: DeviceOpt = "cpu",
) -> None:
    """Features that fire most specifically on each concept relative to the base corpus."""
    from interpedia_trainer.concepts import builtin_concepts, read_concepts, score_concepts
    from interpedia_trainer.corpus import read_texts
    from interpedia_trainer.pipeline import load_sae

    _offline_for_packaged(model)
    sets = read_concepts(concept) if concept else builtin_concepts()
    loaded_sae = load_sae(sae, device)
    hook_name = loaded_sae.cfg.metadata.hook_name
    base = list(read_texts(corpus, max_documents=base_documents))
    hooked = _load_model(model, device)
    hooked.validate_hook(hook_name)
    results = score_concepts(
        lambda batch: hooked.forward_to_hook(batch, hook_name),
        loaded_sae,
        hooked.tokenizer,
        sets,
        base,
        top_n=top_n,
        ignore_token_ids=hooked.special_token_ids,
    )
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in results], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"concept-specific features of {sae}")
    for col in (
        "concept",
        "feature",
        "score",
        "mean act (concept)",
        "mean act (base)",
        "fires (concept)",
        "fires (base)",
    ):
        table.add_column(col, justify="right" if col != "concept" else "left")
    for r in results:
        for i, f in enumerate(r.features):
            table.add_row(
                r.concept if i == 0 else "",
                str(f.feature),
                f"{f.score:.2f}",
                f"{f.mean_concept:.3f}",
                f"{f.mean_base:.3f}",
                f"{f.frac_concept:.0%}",
                f"{f.frac_base:.0%}",
            )
    Console().print(table)


@service.command()
def serve(
    host: str = typer.Option(None, envvar=f"{_ENV}HOST"),
    port: int = typer.Option(None, envvar=f"{_ENV}PORT"),
) -> None:
    """Run the trainer HTTP service (default 127.0.0.1:5004); workers do the work."""
    from interpedia_core.serving import serve as serve_app
    from interpedia_trainer.app import create_app
    from interpedia_trainer.settings import TrainerSettings

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    serve_app(create_app, TrainerSettings(**overrides), _ENV)  # type: ignore[arg-type]


@service.callback()
def _service() -> None:
    """The Interpedia trainer service."""


def main() -> None:
    """`interpedia-trainer serve`: the trainer HTTP service."""
    try:
        service()
    except InterpediaError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from exc
