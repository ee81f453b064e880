"""`interpedia-graph serve | worker | transcoders init|list | export | import`.

This CLI lives in the graph service's own environment (`.venv-graph/bin/interpedia-graph`),
so it is not mounted under the main `interpedia` command. Every flag can also be set by
its `INTERPEDIA_GRAPH_*` variable; domain errors print one `error:` line (exit code 2).
"""

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from interpedia_core import stopping
from interpedia_core.errors import InvalidInput

app = typer.Typer(name="interpedia-graph", no_args_is_help=True, pretty_exceptions_enable=False)
transcoders = typer.Typer(no_args_is_help=True, help="Transcoder sets: make and list them.")
app.add_typer(transcoders, name="transcoders")

_ENV = "INTERPEDIA_GRAPH_"


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(envvar=f"{_ENV}HOST")] = None,
    port: Annotated[int | None, typer.Option(envvar=f"{_ENV}PORT")] = None,
) -> None:
    """Serve the graph API (default 127.0.0.1:5005); graph workers make the graphs."""
    from interpedia_core.serving import serve as serve_app
    from interpedia_graph.app import create_app
    from interpedia_graph.settings import PREFIX, GraphSettings

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    serve_app(create_app, GraphSettings(**overrides), PREFIX, internal=True)  # type: ignore[arg-type]


@app.command()
def worker(
    name: Annotated[str | None, typer.Option(envvar="INTERPEDIA_WORKER_NAME")] = None,
    heartbeat: Annotated[float, typer.Option(envvar="INTERPEDIA_WORKER_HEARTBEAT_SECONDS")] = 10.0,
    stalled_after: Annotated[
        float,
        typer.Option(
            envvar="INTERPEDIA_WORKER_STALLED_AFTER_SECONDS",
            help="Requeue jobs of workers silent this many seconds (killed or lost).",
        ),
    ] = 30.0,
) -> None:
    """Make graphs from the `graph` queue, one at a time, until Ctrl-C."""
    from interpedia_core.logs import configure_logging
    from interpedia_core.settings import CommonSettings
    from interpedia_db.connect import resolve_database_url
    from interpedia_graph.generation import QUEUE
    from interpedia_jobs.queue import create_job_app
    from interpedia_jobs.worker import run_worker

    settings = CommonSettings()
    configure_logging(settings.log_level)
    database_url = resolve_database_url(settings)
    # First SIGTERM/Ctrl-C: the running graph stops at its next batch and is requeued;
    # second: exit at once (the shared stop mechanism of every worker).
    with stopping.stop_on_signals() as stop:
        asyncio.run(
            run_worker(
                create_job_app(database_url),
                settings,
                database_url,
                queues=[QUEUE],
                concurrency=1,  # one graph at a time: a graph takes the machine's cores
                name=name,
                heartbeat_interval=heartbeat,
                stalled_after=stalled_after,
            )
        )
    stop.check()


@transcoders.command("init")
def transcoders_init(
    name: Annotated[str, typer.Option(help="Source set name of the new set, e.g. tc-quick.")],
    d_transcoder: Annotated[int, typer.Option(help="Features per layer.")] = 512,
    density: Annotated[float, typer.Option(help="Share of tokens each feature fires on.")] = 0.01,
    calibration_tokens: Annotated[
        int, typer.Option(help="Tokens of the corpus the thresholds and decoders are fit on.")
    ] = 16_384,
    corpus: Annotated[
        Path | None,
        typer.Option(help="Folder of .txt (default: <cache_dir>/corpora/sotu)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder of the set (default: <data_dir>/transcoders/NAME).")
    ] = None,
    seed: int = 0,
    refit: Annotated[
        bool, typer.Option(help="Fit again even if OUT holds a set fitted the same way.")
    ] = False,
) -> None:
    """Fit a quick transcoder set from the model in seconds and register it (see
    `transcoder_sets`); for graphs until trained transcoders exist."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from interpedia_db.connect import run_in_database
    from interpedia_db.transcoder_sets import register_transcoder_set
    from interpedia_formats.transcoder_set import write_transcoder_set
    from interpedia_graph import transcoder_sets
    from interpedia_graph.replacement import load_tokenizer, model_folder
    from interpedia_graph.settings import GraphSettings
    from interpedia_runtime.models import resolve_model

    if not transcoder_sets.SET_NAME.match(name):
        raise InvalidInput(f"--name {name!r}: use lowercase letters, digits and dashes")
    settings = GraphSettings()
    corpus = corpus or settings.cache_dir / "corpora" / "sotu"
    out = out or settings.data_dir / "transcoders" / name
    fit = {
        "model": settings.model_id,
        "d_transcoder": d_transcoder,
        "density": density,
        "calibration_tokens": calibration_tokens,
        "seed": seed,
    }
    config = AutoConfig.from_pretrained(model_folder(settings.model_id))
    if not refit and transcoder_sets.fit_of(out) == fit:
        typer.echo(f"{out} holds a set fitted the same way: registering it (--refit fits again)")
    else:
        torch.set_flush_denormal(True)
        tokenizer = load_tokenizer(settings.model_id)
        hf_model = AutoModelForCausalLM.from_pretrained(model_folder(settings.model_id)).eval()
        batches = transcoder_sets.calibration_batches(
            tokenizer, corpus, calibration_tokens, context=64
        )
        typer.echo(f"collecting MLP inputs and outputs on {sum(len(b) for b in batches)} contexts")
        mlp_in, mlp_out = transcoder_sets.collect_mlp_pairs(hf_model, batches)
        layers = transcoder_sets.fit_quick_transcoders(
            mlp_in, mlp_out, d_transcoder=d_transcoder, density=density, seed=seed
        )
        for i, layer in enumerate(layers):
            fvu = transcoder_sets.fraction_of_variance_unexplained(layer, mlp_in[i], mlp_out[i])
            typer.echo(f"  layer {i:2d}: fraction of MLP-output variance unexplained {fvu:.3f}")
        write_transcoder_set(
            out,
            layers,
            scan=name,
            model_name=settings.model_id,
            extra_config={"interpedia_fit": fit},
        )
    spec = resolve_model(settings.model_id)

    async def register(sessionmaker) -> None:
        async with sessionmaker.begin() as session:
            await register_transcoder_set(
                session,
                model_id=settings.model_id,
                model_display_name=spec.display_name or settings.model_id,
                name=name,
                folder=out.resolve(),
                layers=list(range(config.num_hidden_layers)),
                n_model_layers=config.num_hidden_layers,
                d_model=config.hidden_size,
                d_transcoder=d_transcoder,
                description=f"Quick transcoders ({d_transcoder} features per layer, fired on "
                f"{density:.1%} of tokens, decoders fit on {calibration_tokens} tokens)",
            )

    run_in_database(settings, register)
    typer.echo(f"registered transcoder set {settings.model_id}/{name} at {out}")


@transcoders.command("list")
def transcoders_list() -> None:
    """The transcoder sets registered for the service's model."""
    from interpedia_db.connect import run_in_database
    from interpedia_graph.settings import GraphSettings
    from interpedia_graph.transcoder_sets import transcoder_sets_of

    settings = GraphSettings()

    async def sets(sessionmaker):
        async with sessionmaker() as session:
            return await transcoder_sets_of(session, settings.model_id)

    for record in run_in_database(settings, sets):
        typer.echo(
            f"{record.name:<20} {record.n_layers} layers × {record.d_transcoder}  {record.folder}"
        )


@app.command("export")
def export_graph(
    model: Annotated[str, typer.Argument(help="Model id.")],
    slug: Annotated[str, typer.Argument(help="The graph's slug.")],
    out: Annotated[Path, typer.Option(help="File to write (Neuronpedia's graph JSON).")],
) -> None:
    """Write a stored graph as Neuronpedia's graph JSON (what Neuronpedia uploads take)."""
    import gzip

    from interpedia_db import graph_store
    from interpedia_db.connect import run_in_database
    from interpedia_graph.settings import GraphSettings

    async def read(sessionmaker) -> bytes:
        async with sessionmaker() as session:
            return await graph_store.graph_data(session, model, slug)

    out.write_bytes(gzip.decompress(run_in_database(GraphSettings(), read)))
    typer.echo(f"wrote {out}")


@app.command("import")
def import_graph(
    path: Annotated[Path, typer.Argument(help="A graph JSON in Neuronpedia's format (or .gz).")],
) -> None:
    """Store a graph JSON made elsewhere (Neuronpedia, circuit-tracer's create_graph_files)."""
    from interpedia_db import graph_store
    from interpedia_db.connect import run_in_database
    from interpedia_formats.neuronpedia_graph import MalformedGraphError, parse_graph
    from interpedia_graph.settings import GraphSettings

    try:
        graph = parse_graph(path.read_bytes())
    except (OSError, MalformedGraphError) as exc:
        raise InvalidInput(f"{path}: {exc}") from None

    async def store(sessionmaker) -> str:
        async with sessionmaker.begin() as session:
            stored = await graph_store.store_graph_file(session, graph, user_id=None)
            return json.dumps({"model_id": stored.model_id, "slug": stored.slug})

    typer.echo(f"stored {run_in_database(GraphSettings(), store)}")


def main() -> None:
    """One `error:` line (exit 2) for a domain error; a stopped worker exits 128+N."""
    from interpedia_core.cli import run

    run(app)
