"""`interpedia train | dashboards | runs | export | concepts` (the `interpedia.cli` entry point).

Commands parse flags (each also readable from an `INTERPEDIA_TRAINER_*` variable), call
the domain functions in `pipeline` / `recorded` / `runs` / `export` / `concepts`, and draw
progress bars. Defaults (corpus, device, database) come from `TrainerSettings`, built
here. Errors from the domain (`InterpediaError`) are printed as one `error: ...` line
with exit code 2 by `interpedia_core.cli.run`. Every input check runs before the work.
"""

import asyncio
import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from interpedia_core import stopping
from interpedia_core.cli import run
from interpedia_core.errors import InvalidInput
from interpedia_db.connect import database_url_of, run_in_database
from interpedia_trainer.settings import TrainerSettings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from interpedia_trainer.model_runtime import HookedModel
    from interpedia_trainer.runs import RunSummary


commands = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
service = typer.Typer(name="interpedia-trainer", no_args_is_help=True)

_ENV = "INTERPEDIA_TRAINER_"
DEFAULT_MODEL = "smollm2-135m"
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", envvar=f"{_ENV}MODEL", help="Interpedia model id (or HF id, or HF folder)."
    ),
]
CorpusOpt = Annotated[
    str | None,
    typer.Option(
        "--corpus",
        envvar=f"{_ENV}CORPUS",
        help="Folder of .txt, .jsonl, or dataset (default: <cache_dir>/corpora/sotu).",
        show_default=False,
    ),
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", envvar=f"{_ENV}DEVICE", show_default=False)
]
SOURCE_SET = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def _load_model(model: str, device: str) -> "HookedModel":
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


def _check_without_model(values: dict[str, Any]) -> None:
    """Fail on bad sizes in a second, not after loading the model.

    d_in only scales d_sae when --d-sae is unset, so with d_sae given any positive d_in
    checks every other option exactly; the rest waits for the model's d_model.
    """
    from interpedia_trainer.training import TrainingConfig

    if values.get("d_sae") is not None:
        TrainingConfig.from_dict({"d_in": max(int(values["d_sae"]), 1), **values}).validate()


def _train_bar(
    total: int,
) -> tuple[Any, Callable[[int, int, dict[str, float]], None], Callable[[str], None]]:
    from tqdm import tqdm

    bar = tqdm(total=total, unit="tok", unit_scale=True, desc="train")

    def stage(text: str) -> None:
        tqdm.write(text)  # a line above the bar, kept in the output (e.g. "resumed at step 7")
        bar.set_description(text)

    def progress(done: int, total: int, metrics: dict[str, float]) -> None:
        bar.n = done
        bar.set_postfix(
            loss=f"{metrics['loss']:.4g}",
            l0=f"{metrics['l0']:.1f}",
            ev=f"{metrics['explained_variance']:.3f}",
            refresh=False,
        )
        bar.refresh()

    return bar, progress, stage


def _prompt_bar(total: int) -> tuple[Any, Callable[[int, int], None]]:
    from tqdm import tqdm

    bar = tqdm(total=total, unit="prompt", desc="dashboards")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, progress


@commands.command()
def train(
    out: Annotated[Path, typer.Option(help="Output folder (the SAELens SAE).")],
    config: Annotated[
        Path | None, typer.Option(help="JSON file of TrainingConfig fields; flags override it.")
    ] = None,
    hook: Annotated[str | None, typer.Option(help="Hook, e.g. blocks.6.hook_resid_post.")] = None,
    architecture: Annotated[
        str | None,
        typer.Option(
            help="standard|topk|batchtopk|matryoshka_batchtopk|jumprelu, or transcoder "
            "(a per-layer transcoder set: --layers, --activation, --skip)"
        ),
    ] = None,
    layers: Annotated[
        str | None,
        typer.Option(help="Transcoder layers: all, 3, 0,2,5 or 0-3 (architecture transcoder)."),
    ] = None,
    activation: Annotated[
        str, typer.Option(help="Transcoder activation: relu | jumprelu | topk.")
    ] = "topk",
    skip: Annotated[
        bool, typer.Option(help="Transcoders with a linear skip connection (W_skip).")
    ] = False,
    d_sae: Annotated[int | None, typer.Option()] = None,
    expansion_factor: Annotated[int | None, typer.Option()] = None,
    k: Annotated[float | None, typer.Option(help="Latents per token (TopK family).")] = None,
    aux_loss_coefficient: Annotated[
        float | None,
        typer.Option(help="AuxK dead-latent revival weight (TopK family; default 1, 0: off)."),
    ] = None,
    matryoshka_widths: Annotated[
        str | None,
        typer.Option(
            help="Nested prefix widths, e.g. 288,1152,4608 (default: doubling up to d_sae)."
        ),
    ] = None,
    l1: Annotated[float | None, typer.Option(help="L1 coefficient (standard).")] = None,
    l0: Annotated[float | None, typer.Option(help="L0 coefficient (jumprelu).")] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    lr_scheduler: Annotated[str | None, typer.Option(help="constant|cosineannealing|...")] = None,
    normalize_activations: Annotated[
        str | None,
        typer.Option(help="none | expected_average_only_in (scale inputs to norm sqrt(d_in))"),
    ] = None,
    b_dec_init: Annotated[
        str | None,
        typer.Option(help="mean (default: the decoder bias starts at the mean input) | zeros"),
    ] = None,
    dead_feature_window: Annotated[
        int | None,
        typer.Option(help="Steps without firing before a latent is dead (TopK's AuxK revives it)."),
    ] = None,
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
    register: Annotated[
        str | None,
        typer.Option(
            metavar="SOURCE_SET",
            help="Record the run in the database and register the SAE as source "
            "{layer}-SOURCE_SET of the model.",
        ),
    ] = None,
    queue: Annotated[
        bool,
        typer.Option(
            "--queue",
            help="Transcoder sets with --register: record the run and leave the training "
            "to a worker (a job) instead of now.",
        ),
    ] = False,
    dashboard_prompts: Annotated[
        int,
        typer.Option(min=1, help="Prompts each registered transcoder's dashboards scan."),
    ] = 2048,
    nproc_per_node: Annotated[
        int | None,
        typer.Option(
            envvar=f"{_ENV}NPROC_PER_NODE",
            min=1,
            help="Train with N processes on this node (torchrun; GPUs: one each). Several "
            "nodes: set torchrun's PET_NNODES, PET_NODE_RANK and PET_RDZV_ENDPOINT "
            "(or PET_MASTER_ADDR/PORT) on each.",
            show_default=False,
        ),
    ] = None,
    model: ModelOpt = DEFAULT_MODEL,
    corpus: CorpusOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Train an SAE on a corpus's activations; writes a SAELens folder plus training.png."""
    from interpedia_trainer import runs
    from interpedia_trainer.distributed import launched_by_torchrun

    settings = TrainerSettings()
    corpus = runs.validated_corpus(corpus, settings)  # before the heavy imports: fails fast
    if architecture == "transcoder" and nproc_per_node is not None:
        raise InvalidInput("transcoder sets train in one process: drop --nproc-per-node")
    if nproc_per_node is not None and not launched_by_torchrun():
        _relaunch_with_torchrun(nproc_per_node)

    import torch

    from interpedia_trainer.distributed import join_from_environment, leave
    from interpedia_trainer.training import TrainingConfig

    parallel = join_from_environment(device or settings.device)
    device = parallel.device
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
        "aux_loss_coefficient": aux_loss_coefficient,
        "matryoshka_widths": _parse_widths(matryoshka_widths),
        "l1_coefficient": l1,
        "l0_coefficient": l0,
        "lr": lr,
        "lr_scheduler": lr_scheduler,
        "normalize_activations": normalize_activations,
        "dead_feature_window": dead_feature_window,
        "b_dec_init": b_dec_init,
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
    if values.get("architecture") == "transcoder":
        try:
            _train_transcoders(
                values,
                model=model,
                corpus=corpus,
                out=out,
                layers=layers or "all",
                activation=activation,
                skip=skip,
                register=register,
                max_contexts=max_contexts,
                resume=resume,
                settings=settings,
                queue=queue,
                dashboard_prompts=dashboard_prompts,
            )
        finally:
            leave()
        return
    if queue:
        raise InvalidInput("--queue is for --architecture transcoder (SAE runs: POST /v1/train)")
    _check_without_model(values)
    if register is not None:
        if not SOURCE_SET.match(register):
            raise InvalidInput(
                f"--register {register!r}: use lowercase letters, digits and dashes, e.g. res-demo"
            )
        runs.hook_layer(values.get("hook_name") or TrainingConfig.hook_name)
    torch.set_flush_denormal(True)  # denormals make CPU steps several times slower
    main = parallel.is_main
    echo = typer.echo if main else _quiet
    echo(f"loading {model}")
    hooked = _load_model(model, device)
    # The hook's own width: d_model only on the residual stream (hook_z: n_heads * d_head).
    values.setdefault(
        "d_in", hooked.hook_width(values.get("hook_name") or TrainingConfig.hook_name)
    )
    values.setdefault("model_name", hooked.model_id)
    values.setdefault("dataset_path", corpus)
    cfg = TrainingConfig.from_dict(values)
    cfg.validate()
    hooked.validate_hook(cfg.hook_name)
    if parallel.world_size > 1:
        echo(f"training on {parallel.world_size} ranks ({device} each)")
    options: dict[str, Any] = {
        "cache_dir": cache_dir,
        "max_contexts": max_contexts,
        "resume": resume,
        "parallel": parallel,
    }
    bar = None
    if main:  # rank 0 alone shows progress and records the run
        bar, progress, stage = _train_bar(cfg.total_steps * cfg.batch_size)
        options.update(on_progress=progress, on_stage=stage)
    try:
        with stopping.stop_on_signals():
            if register is None or not main:
                from interpedia_trainer.pipeline import train_from_corpus

                result = train_from_corpus(cfg, hooked, corpus, out, **options)
            else:
                run_config = {
                    **dataclasses.asdict(cfg),
                    "model_id": hooked.model_id,
                    "source_set": register,
                    "corpus": corpus,
                    "out": str(out),
                    "max_contexts": max_contexts,
                    "world_size": parallel.world_size,
                }
                recorded = run_in_database(
                    settings,
                    lambda sessionmaker: _train_registered(
                        sessionmaker, run_config, cfg, hooked, corpus, out, register, options
                    ),
                )
                result = recorded.result
    except stopping.Stopped as exc:
        raise exc.at("(rerun the same command to resume)") from None
    finally:
        if bar is not None:
            bar.close()
        leave()
    echo(
        f"saved {result.sae_path} ({result.n_tokens} tokens, "
        f"{result.tokens_per_second:.0f} tokens/s)"
    )
    for key, value in sorted(result.final_metrics.items()):
        echo(f"  {key:28s} {value:.5g}")
    if register is not None and main:
        echo(f"registered source {hooked.model_id}/{recorded.source_id}")


def _train_transcoders(
    values: dict[str, Any],
    *,
    model: str,
    corpus: str,
    out: Path,
    layers: str,
    activation: str,
    skip: bool,
    register: str | None,
    max_contexts: int | None,
    resume: bool,
    settings: TrainerSettings,
    queue: bool,
    dashboard_prompts: int,
) -> None:
    """`train --architecture transcoder`: one transcoder per layer from one pass over the
    corpus (`transcoders`); with --register, a source set with dashboards queued; with
    --queue, a recorded run that a worker trains (`recorded.queue_transcoder_run`)."""
    import torch

    from interpedia_trainer import recorded, transcoders
    from interpedia_trainer.training import TrainingConfig

    if activation not in transcoders.ACTIVATIONS:
        raise InvalidInput(
            f"unknown transcoder activation {activation!r}; "
            f"choose one of {sorted(transcoders.ACTIVATIONS)}"
        )
    if register is not None and not SOURCE_SET.match(register):
        raise InvalidInput(
            f"--register {register!r}: use lowercase letters, digits and dashes, e.g. tc-demo"
        )
    values = {k: v for k, v in values.items() if k not in ("hook_name", "architecture")}
    if queue:
        if register is None:
            raise InvalidInput("--queue needs --register SOURCE_SET (the worker registers it)")
        run = recorded.TranscoderRun(
            model_id=model,
            source_set=register,
            corpus=corpus,
            out=str(out.resolve()),
            layers=layers,
            activation=activation,
            skip=skip,
            max_contexts=max_contexts,
            dashboard_prompts=dashboard_prompts,
        )
        config = recorded.transcoder_run_config(values, run)
        run_id, job_id = run_in_database(
            settings, lambda sessionmaker: recorded.queue_transcoder_run(sessionmaker, config)
        )
        if job_id is None:
            typer.echo(f"transcoder set {register} is already queued or training (run {run_id})")
        else:
            typer.echo(f"queued run {run_id} as job {job_id} (`interpedia worker` runs it)")
        return
    torch.set_flush_denormal(True)  # denormals make CPU steps several times slower
    typer.echo(f"loading {model}")
    hooked = _load_model(model, values["device"])
    chosen = transcoders.parse_layers(layers, hooked.n_layers)
    values.setdefault("d_in", hooked.d_model)
    values.setdefault("model_name", hooked.model_id)
    values.setdefault("dataset_path", corpus)
    base = TrainingConfig.from_dict(values)
    bar, progress, stage = _train_bar(base.total_steps * base.batch_size)
    try:
        with stopping.stop_on_signals():
            result = transcoders.train_transcoder_set(
                base,
                hooked,
                corpus,
                out,
                layers=chosen,
                activation=activation,
                skip=skip,
                max_contexts=max_contexts,
                resume=resume,
                scan=register or out.name,
                on_progress=progress,
                on_stage=stage,
            )
    except stopping.Stopped as exc:
        raise exc.at("(rerun the same command to resume)") from None
    finally:
        bar.close()
    typer.echo(
        f"saved {result.folder} ({len(chosen)} layers, {result.n_tokens} tokens, "
        f"{result.tokens_per_second:.0f} tokens/s for all layers, "
        f"{result.forward_share:.0%} of the time in the model's forward)"
    )
    for layer, metrics in result.per_layer.items():
        typer.echo(
            f"  layer {layer:2d}: fvu {metrics.get('fvu', float('nan')):.3f}  "
            f"l0 {metrics.get('l0', float('nan')):.1f}  dead {metrics['dead_fraction']:.3f}"
        )
    if register is not None:
        ids = run_in_database(
            settings,
            lambda sessionmaker: recorded.register_transcoders(
                sessionmaker,
                hooked,
                result,
                name=register,
                activation=activation,
                corpus=corpus,
                follow_up=recorded.follow_ups(database_url_of(sessionmaker)),
                dashboard_prompts=dashboard_prompts,
            ),
        )
        typer.echo(
            f"registered transcoder set {hooked.model_id}/{register} "
            f"({len(ids)} sources; dashboards queued)"
        )


def _quiet(_message: str) -> None:
    """Ranks other than 0 print nothing (their output would repeat rank 0's)."""


def _parse_widths(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(w) for w in text.split(",")]
    except ValueError as exc:
        raise InvalidInput(
            f"--matryoshka-widths takes comma-separated integers, got {text!r}"
        ) from exc


def _relaunch_with_torchrun(nproc_per_node: int) -> None:
    """Replace this process by torchrun running the same command on N workers.

    The workers see torchrun's variables and skip this step. Other torchrun settings
    (nodes, rendezvous) come from its PET_* variables, so one command line serves a
    laptop and each node of a cluster.
    """
    import os
    import sys

    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={nproc_per_node}",
        "-m",
        "interpedia_core.cli",
        *sys.argv[1:],
    ]
    sys.stdout.flush()
    os.execv(sys.executable, command)


async def _train_registered(
    sessionmaker: "async_sessionmaker[AsyncSession]",
    run_config: dict[str, Any],
    cfg: Any,
    hooked: "HookedModel",
    corpus: str,
    out: Path,
    source_set: str,
    options: dict[str, Any],
) -> Any:
    from tqdm import tqdm

    from interpedia_trainer import recorded, runs

    async with sessionmaker.begin() as session:
        run = await runs.stopped_run(session, run_config) if options["resume"] else None
        resumed = run is not None
        if run is None:
            run = await runs.create_run(session, run_config)
    # above the progress bar
    tqdm.write(f"{'resuming' if resumed else 'training'} run {run.id} ({run.name})")
    follow_up = recorded.follow_ups(database_url_of(sessionmaker))
    return await recorded.train_recorded(
        sessionmaker,
        run.id,
        cfg,
        hooked,
        corpus,
        out,
        source_set=source_set,
        follow_up=follow_up,
        **options,
    )


@commands.command()
def dashboards(
    source: Annotated[
        str | None,
        typer.Option(help="Source id, e.g. 6-res-demo: load its SAE, store dashboards in the DB."),
    ] = None,
    sae: Annotated[
        Path | None, typer.Option(help="SAE folder (cfg.json + weights); needs --out.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="With --sae: write the dashboards here as JSON.")
    ] = None,
    n_prompts: Annotated[int, typer.Option(help="Corpus contexts to scan.")] = 2048,
    context_size: Annotated[int, typer.Option()] = 128,
    features: Annotated[str | None, typer.Option(help="Feature range START:STOP.")] = None,
    batch_size: Annotated[int, typer.Option(help="Prompts per model batch.")] = 16,
    n_top: Annotated[int, typer.Option()] = 20,
    model: ModelOpt = DEFAULT_MODEL,
    corpus: CorpusOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Compute feature dashboards in one pass over the corpus: into the DB, or as JSON."""
    from interpedia_trainer import runs
    from interpedia_trainer.dashboards import DashboardOptions

    if (source is None) == (sae is None):
        raise InvalidInput(
            "give either --source SOURCE_ID (dashboards go to the database) "
            "or --sae DIR --out FILE.json"
        )
    if sae is not None and out is None:
        raise InvalidInput("--sae needs --out FILE.json (or use --source to store them)")
    if source is not None and out is not None:
        raise InvalidInput("--out is for --sae; with --source the dashboards go to the database")
    settings = TrainerSettings()
    corpus = runs.validated_corpus(corpus, settings)
    device = device or settings.device
    feature_range = _parse_range(features)
    options = DashboardOptions(batch_size=batch_size, n_top=n_top)
    if source is not None:
        _dashboards_of_source(
            settings, model, source, corpus, device, n_prompts, context_size, feature_range, options
        )
        return

    from interpedia_trainer.pipeline import dashboards_from_corpus, load_sae

    assert sae is not None and out is not None
    loaded_sae = load_sae(sae, device)
    hooked = _load_model(model, device)
    bar, progress = _prompt_bar(n_prompts)
    try:
        with stopping.stop_on_signals():
            result = dashboards_from_corpus(
                hooked,
                loaded_sae,
                corpus,
                n_prompts=n_prompts,
                context_size=context_size,
                feature_range=feature_range,
                options=options,
                on_progress=progress,
                checkpoint=out.with_name(out.name + ".pass.pt"),
            )
    finally:
        bar.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([dataclasses.asdict(d) for d in result]))
    live = sum(d.max_activation > 0 for d in result)
    typer.echo(f"wrote {len(result)} dashboards ({live} features fired) to {out}")


def _dashboards_of_source(
    settings: TrainerSettings,
    model: str,
    source_id: str,
    corpus: str,
    device: str,
    n_prompts: int,
    context_size: int,
    feature_range: tuple[int, int] | None,
    options: Any,
) -> None:
    from interpedia_runtime.models import resolve_model
    from interpedia_trainer import runs

    model_id = resolve_model(model).model_id  # the database keys sources by Interpedia id

    async def work(sessionmaker: "async_sessionmaker[AsyncSession]") -> Any:
        async with sessionmaker() as session:
            source = await runs.get_source(session, model_id, source_id)
        from interpedia_trainer import recorded  # SAELens loads slowly: after the lookup

        hooked = await asyncio.to_thread(_load_model, model_id, device)
        bar, progress = _prompt_bar(n_prompts)
        try:
            return await recorded.dashboards_recorded(
                sessionmaker,
                hooked,
                source,
                corpus,
                n_prompts=n_prompts,
                context_size=context_size,
                feature_range=feature_range,
                device=device,
                options=options,
                on_progress=progress,
                checkpoint_dir=settings.data_dir / "checkpoints",
                follow_up=recorded.follow_ups(database_url_of(sessionmaker)),
            )
        finally:
            bar.close()

    with stopping.stop_on_signals():
        stored = run_in_database(settings, work)
    typer.echo(
        f"stored {stored.features} dashboards of {model_id}/{source_id} "
        f"({stored.fired} features fired, {stored.activations} examples)"
    )
    if not stored.complete:
        typer.echo("other feature ranges have no dashboards yet; the source is not browsable")
    else:
        typer.echo("its feature map is queued for a worker (or run `interpedia umap` now)")


def _metric(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _runs_table(summaries: "list[RunSummary]") -> Any:
    from rich.table import Table

    table = Table(
        title="training runs",
        caption="EV explained variance, CE rec. CE loss recovered (held-out, final)",
    )
    for column in ("id", "name", "model", "hook", "arch", "status", "tokens"):
        table.add_column(column, justify="right" if column in ("id", "tokens") else "left")
    for column in ("EV", "L0", "MSE", "CE rec."):
        table.add_column(column, justify="right", no_wrap=True)
    for s in summaries:
        table.add_row(
            str(s.id),
            s.name,
            s.model_id,
            s.hook_name,
            s.architecture,
            s.status,
            f"{s.n_tokens:,}",
            _metric(s.final("explained_variance"), ".3f"),
            _metric(s.final("l0"), ".1f"),
            _metric(s.final("mse"), ".4g"),
            _metric(s.final("ce_loss_recovered"), ".3f"),
        )
    return table


def _comparison_tables(comparison: Any) -> list[Any]:
    from rich.table import Table

    ids = [f"run {s.id}" for s in comparison.runs]
    head = Table(title="runs")
    configs = Table(title="config differences")
    metrics = Table(title="final metrics")
    for table, first in ((head, ""), (configs, "option"), (metrics, "metric")):
        table.add_column(first)
        for column in ids:
            table.add_column(column, justify="right")
    for label, getter in (
        ("name", lambda s: s.name),
        ("model", lambda s: s.model_id),
        ("hook", lambda s: s.hook_name),
        ("architecture", lambda s: s.architecture),
        ("status", lambda s: s.status),
        ("tokens", lambda s: f"{s.n_tokens:,}"),
    ):
        head.add_row(label, *[getter(s) for s in comparison.runs])
    for key, config_values in comparison.config_differences.items():
        configs.add_row(key, *["-" if v is None else str(v) for v in config_values])
    for key, metric_values in comparison.final_metrics.items():
        metrics.add_row(key, *[_metric(v, ".5g") for v in metric_values])
    return [head, configs, metrics]


@commands.command("runs")
def list_runs(
    run_ids: Annotated[
        list[int] | None,
        typer.Argument(help="Only these runs (with --compare: the runs to compare).", metavar="ID"),
    ] = None,
    compare: Annotated[
        bool, typer.Option("--compare", help="Config differences and final metrics side by side.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Show the newest N runs.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Training runs recorded by `train --register` and the trainer service."""
    from rich.console import Console

    from interpedia_trainer import runs

    async def work(sessionmaker: "async_sessionmaker[AsyncSession]") -> "list[RunSummary]":
        async with sessionmaker() as session:
            return await runs.run_summaries(session, run_ids=run_ids or None, limit=limit)

    if compare and len(run_ids or []) < 2:
        raise InvalidInput("--compare needs two or more run ids: `interpedia runs --compare 3 5`")
    summaries = run_in_database(TrainerSettings(), work)
    console = Console()
    if compare:
        comparison = runs.compare_runs(summaries)
        if as_json:
            typer.echo(json.dumps(dataclasses.asdict(comparison), indent=2, default=str))
            return
        for table in _comparison_tables(comparison):
            console.print(table)
        return
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(s) for s in summaries], indent=2, default=str))
        return
    if not summaries:
        typer.echo("no training runs yet; `interpedia train --register SOURCE_SET` records one")
        return
    console.print(_runs_table(summaries))


@commands.command()
def export(
    source: Annotated[str, typer.Option(help="Source id, e.g. 6-res-demo.")],
    out: Annotated[Path, typer.Option(help="Folder; the export goes to OUT/<model>/<source>/.")],
    model: ModelOpt = DEFAULT_MODEL,
) -> None:
    """Write a stored source in Neuronpedia's bulk-export format (what imports read)."""
    from interpedia_trainer.export import ExportResult, export_source

    async def work(sessionmaker: "async_sessionmaker[AsyncSession]") -> ExportResult:
        async with sessionmaker() as session:
            return await export_source(session, model, source, out)

    result = run_in_database(TrainerSettings(), work)
    counts = ", ".join(
        f"{result.rows.get(kind, 0)} {kind}" for kind in ("features", "activations", "explanations")
    )
    typer.echo(f"exported {model}/{source} to {result.path} ({counts})")


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
    corpus: CorpusOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Features that fire most specifically on each concept relative to the base corpus."""
    from interpedia_trainer import runs
    from interpedia_trainer.concepts import builtin_concepts, read_concepts
    from interpedia_trainer.pipeline import concepts_from_corpus, load_sae

    settings = TrainerSettings()
    corpus = runs.validated_corpus(corpus, settings)
    device = device or settings.device
    sets = read_concepts(concept) if concept else builtin_concepts()
    loaded_sae = load_sae(sae, device)
    hooked = _load_model(model, device)
    results = concepts_from_corpus(
        hooked, loaded_sae, sets, corpus, base_documents=base_documents, top_n=top_n
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


def _follow_up_result(job_id: int | None, what: str) -> None:
    if job_id is None:
        typer.echo(f"{what} is already queued; a worker will compute it")
    else:
        typer.echo(f"queued {what} as job {job_id} (`interpedia worker` runs it)")


@commands.command()
def umap(
    source: Annotated[str, typer.Option(help="Source id, e.g. 6-res-demo.")],
    queue: Annotated[
        bool, typer.Option("--queue", help="Leave it to a worker (a job) instead of now.")
    ] = False,
    seed: Annotated[
        int | None, typer.Option(help="Seed for a reproducible (single-threaded) layout.")
    ] = None,
    model: ModelOpt = DEFAULT_MODEL,
    device: DeviceOpt = None,
) -> None:
    """Compute a source's feature map (2-D UMAP of its decoder directions) and store it."""
    from interpedia_runtime.models import resolve_model
    from interpedia_trainer import feature_map, recorded, runs

    settings = TrainerSettings()
    model_id = resolve_model(model).model_id

    async def work(sessionmaker: "async_sessionmaker[AsyncSession]") -> Any:
        if not queue:
            return await recorded.feature_map_recorded(
                sessionmaker, model_id, source, device=device or settings.device, seed=seed
            )
        async with sessionmaker() as session:  # refuse now, not on the worker
            await feature_map.check_mappable(
                session, await runs.get_source(session, model_id, source)
            )
        follow_up = recorded.follow_ups(database_url_of(sessionmaker))
        return await recorded.queue_feature_map(follow_up, model_id, source)

    result = run_in_database(settings, work)
    if queue:
        _follow_up_result(result, f"the feature map of {model_id}/{source}")
        return
    typer.echo(
        f"stored the feature map of {model_id}/{source}: {result.features} features, "
        f"{result.clusters} clusters"
    )


@commands.command()
def evaluate(
    source: Annotated[
        str | None, typer.Option(help="Source id, e.g. 6-res-demo: results go to the database.")
    ] = None,
    sae: Annotated[
        Path | None, typer.Option(help="Or any SAELens folder (cfg.json + weights), offline.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="With --sae: also write the results (SAE-Bench JSON).")
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(help="core | absorption_first_letter (repeatable; default both)."),
    ] = None,
    queue: Annotated[
        bool, typer.Option("--queue", help="Leave it to a worker (a job) instead of now.")
    ] = False,
    model: ModelOpt = DEFAULT_MODEL,
    corpus: CorpusOpt = None,
    device: DeviceOpt = None,
) -> None:
    """Evaluate an SAE on the fixed evaluation set: a source's (stored) or a folder's."""
    from interpedia_runtime.models import resolve_model
    from interpedia_trainer import recorded, runs

    if (source is None) == (sae is None):
        raise InvalidInput("give either --source SOURCE_ID or --sae DIR")
    if sae is not None and queue:
        raise InvalidInput("--queue is for --source (jobs read the database)")
    if source is not None and out is not None:
        raise InvalidInput("--out is for --sae; a source's results go to the database")
    settings = TrainerSettings()
    corpus = runs.validated_corpus(corpus, settings)
    kinds = kind or list(recorded.EVAL_KINDS)
    recorded.check_kinds(kinds)
    device = device or settings.device
    spec, absorption = recorded.evaluation_setup(settings)
    if sae is not None:
        from interpedia_trainer.pipeline import load_sae

        loaded = load_sae(sae, device)
        outputs = recorded.evaluate_sae(
            _load_model(model, device),
            loaded,
            corpus,
            kinds=kinds,
            spec=spec,
            absorption=absorption,
        )
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(outputs, indent=2))
        _print_evaluations(outputs)
        return
    assert source is not None
    model_id = resolve_model(model).model_id

    async def work(sessionmaker: "async_sessionmaker[AsyncSession]") -> Any:
        async with sessionmaker() as session:
            found = await runs.get_source(session, model_id, source)
        runs.sae_location(found)  # refuse a source without weights before loading anything
        if queue:
            follow_up = recorded.follow_ups(database_url_of(sessionmaker))
            return await recorded.queue_evaluations(follow_up, model_id, source, kinds, corpus)
        hooked = await asyncio.to_thread(_load_model, model_id, device)
        return await recorded.evaluate_recorded(
            sessionmaker,
            hooked,
            found,
            corpus,
            kinds=kinds,
            spec=spec,
            absorption=absorption,
            device=device,
            on_progress=lambda name, done, total: typer.echo(f"  {name}: {done}/{total}"),
        )

    result = run_in_database(settings, work)
    if queue:
        _follow_up_result(result, f"the evaluations of {model_id}/{source}")
        return
    _print_evaluations(result)


def _print_evaluations(outputs: list[dict[str, Any]]) -> None:
    for output in outputs:
        typer.echo(f"{output['eval_type_id']}:")
        for group, values in output["eval_result_metrics"].items():
            for name, value in values.items():
                if isinstance(value, int | float):
                    typer.echo(f"  {group}/{name:34s} {value:.5g}")


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
    serve_app(create_app, TrainerSettings(**overrides), _ENV, internal=True)  # type: ignore[arg-type]


@service.callback()
def _service() -> None:
    """The Interpedia trainer service."""


def main() -> None:
    """`interpedia-trainer serve`: the trainer HTTP service."""
    run(service)
