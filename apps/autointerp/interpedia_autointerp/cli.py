"""`interpedia-autointerp serve`, and `interpedia explain|search|embed-explanations`.

`commands` (no name) is merged into the `interpedia` CLI; `main` runs the
service's own CLI. Flags mirror `INTERPEDIA_AUTOINTERP_*` variables (the
settings read them); commands call the same domain functions as the routes.
"""

import typer

from interpedia_autointerp.settings import AutointerpSettings
from interpedia_core import stopping
from interpedia_core.cli import run
from interpedia_db.connect import run_in_database

commands = typer.Typer()
service = typer.Typer(name="interpedia-autointerp", no_args_is_help=True)


@commands.command()
def explain(
    model_id: str = typer.Argument(..., help="Model id, e.g. smollm2-135m"),
    source_id: str = typer.Argument(..., help="Source id, e.g. 6-res-demo"),
    index: int | None = typer.Option(None, help="One feature; default: every feature"),
    method: str = typer.Option("auto", help="auto (LLM if configured), offline or llm"),
    concurrency: int = typer.Option(
        4, envvar="INTERPEDIA_AUTOINTERP_MAX_CONCURRENCY", help="Features in flight at once"
    ),
) -> None:
    """Explain one feature, or every unexplained feature of a source, and store the results."""
    from interpedia_autointerp import batch
    from interpedia_autointerp.explain import LLM_TYPE_NAME, OFFLINE_TYPE_NAME
    from interpedia_autointerp.resources import build_embedders, build_llm

    settings = AutointerpSettings()
    llm = build_llm(settings) if method in ("auto", "llm") else None
    if method == "llm" and llm is None:
        raise typer.BadParameter("--method llm needs INTERPEDIA_AUTOINTERP_LLM_MODEL")
    explainer = batch.llm_explainer(llm) if llm else batch.offline_explainer()
    type_name = LLM_TYPE_NAME if llm else OFFLINE_TYPE_NAME
    embedder = build_embedders(settings).get()

    async def progress(done: int, total: int, message: str) -> None:
        typer.echo(f"\r{done}/{total} features ({message})", nl=False, err=True)

    async def run(sessionmaker) -> None:
        from interpedia_autointerp import storage

        if index is not None:
            async with sessionmaker.begin() as session:
                examples = await storage.load_feature_examples(session, model_id, source_id, index)
            generated = await explainer(examples)
            async with sessionmaker.begin() as session:
                row = await storage.store_explanation(
                    session, model_id, source_id, index, generated
                )
                await storage.store_embeddings(session, embedder, [row])
            typer.echo(f"{model_id}/{source_id}/{index}: {generated.description}")
            return
        result = await batch.explain_source(
            sessionmaker,
            model_id,
            source_id,
            explainer,
            type_name,
            embedder=embedder,
            concurrency=concurrency,
            progress=progress,
        )
        typer.echo(
            f"\nexplained {result.done}, already done {result.skipped}, "
            f"failed {len(result.failed)} of {result.total} that fired "
            f"({result.not_fired} never fired)",
        )

    with stopping.stop_on_signals():
        run_in_database(settings, run)


@commands.command()
def score(
    model_id: str = typer.Argument(..., help="Model id, e.g. smollm2-135m"),
    source_id: str = typer.Argument(..., help="Source id, e.g. 6-res-demo"),
    scorer: str = typer.Option(
        "embedding", help="embedding (offline), or detection, fuzz, simulation (need an LLM)"
    ),
    sample: int | None = typer.Option(None, help="Score only this many explanations"),
    concurrency: int = typer.Option(
        4, envvar="INTERPEDIA_AUTOINTERP_MAX_CONCURRENCY", help="Explanations in flight at once"
    ),
) -> None:
    """Score a source's explanations that have no score of this type yet, and store them."""
    from interpedia_autointerp import batch
    from interpedia_autointerp.resources import build_embedders, build_llm

    settings = AutointerpSettings()
    embedder = build_embedders(settings).get() if scorer == "embedding" else None
    llm = None if scorer == "embedding" else build_llm(settings)

    async def run(sessionmaker) -> batch.BatchResult:
        return await batch.score_source(
            sessionmaker,
            model_id,
            source_id,
            scorer,
            embedder=embedder,
            llm=llm,
            sample=sample,
            concurrency=concurrency,
        )

    with stopping.stop_on_signals():
        result = run_in_database(settings, run)
    typer.echo(
        f"scored {result.done}, already scored {result.skipped}, "
        f"failed {len(result.failed)} of {result.total} ({scorer})"
    )


@commands.command()
def search(
    query: str = typer.Argument(..., help="What to look for, e.g. 'cats'"),
    mode: str = typer.Option("hybrid", help="semantic, keyword or hybrid"),
    model_id: str | None = typer.Option(None, "--model", help="Only this model"),
    source_set: str | None = typer.Option(None, help="Only this source set (needs --model)"),
    source: list[str] = typer.Option(None, help="Only these sources (repeat)"),
    limit: int = typer.Option(10),
    offset: int = typer.Option(0),
) -> None:
    """Search explanations; prints similarity, feature and description, best first."""
    from interpedia_autointerp import search as search_domain
    from interpedia_autointerp.resources import build_embedders

    settings = AutointerpSettings()
    embedder = build_embedders(settings).get()

    async def run(sessionmaker) -> list[search_domain.SearchHit]:
        async with sessionmaker.begin() as session:
            return await search_domain.search_explanations(
                session,
                embedder,
                query,
                mode,  # type: ignore[arg-type]
                search_domain.SearchFilters(model_id, source_set, source or None),
                limit=limit,
                offset=offset,
            )

    for hit in run_in_database(settings, run):
        similarity = f"{hit.similarity:.3f}" if hit.similarity is not None else "  -  "
        typer.echo(f"{similarity}  {hit.model_id}/{hit.source_id}/{hit.index}  {hit.description}")


@commands.command("embed-explanations")
def embed_explanations(
    model_id: str | None = typer.Option(None, "--model"),
    source_id: str | None = typer.Option(None, "--source"),
) -> None:
    """Give explanations lacking one a vector from the default embedding model (resumable)."""
    from interpedia_autointerp import batch
    from interpedia_autointerp.resources import build_embedders

    settings = AutointerpSettings()
    embedder = build_embedders(settings).get()

    async def run(sessionmaker) -> batch.BatchResult:
        return await batch.embed_explanations(
            sessionmaker, embedder, model_id=model_id, source_id=source_id
        )

    with stopping.stop_on_signals():
        result = run_in_database(settings, run)
    typer.echo(f"embedded {result.done} explanations with {embedder.name}")


@service.command()
def serve(
    host: str = typer.Option(None, envvar="INTERPEDIA_AUTOINTERP_HOST"),
    port: int = typer.Option(None, envvar="INTERPEDIA_AUTOINTERP_PORT"),
) -> None:
    """Run the autointerp HTTP service (default 127.0.0.1:5003)."""
    from interpedia_autointerp.app import create_app
    from interpedia_core.serving import serve as serve_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = AutointerpSettings(**overrides)
    serve_app(create_app, settings, "INTERPEDIA_AUTOINTERP_")  # type: ignore[arg-type]


@service.callback()
def _service() -> None:
    """The Interpedia autointerp service."""


def main() -> None:
    run(service)
