"""`interpedia-inference serve` (also `interpedia inference serve`)."""

import typer

from interpedia_core.cli import run

app = typer.Typer(name="inference", help="The inference service (port 5002).", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Keep `serve` a subcommand (`interpedia-inference serve`)."""


@app.command()
def serve(
    port: int | None = typer.Option(None, help="Port (INTERPEDIA_INFERENCE_PORT, default 5002)"),
    host: str | None = typer.Option(None, help="Host (INTERPEDIA_INFERENCE_HOST)"),
    model_id: str | None = typer.Option(None, help="Model id (INTERPEDIA_INFERENCE_MODEL_ID)"),
) -> None:
    """Serve the inference API; the model loads in the background after the port opens."""
    from interpedia_core.serving import serve as run
    from interpedia_inference.app import create_app
    from interpedia_inference.settings import PREFIX, InferenceSettings

    overrides = {
        k: v for k, v in {"port": port, "host": host, "model_id": model_id}.items() if v is not None
    }
    settings = InferenceSettings(**overrides)
    run(create_app, settings, PREFIX)


def main() -> None:
    run(app)
