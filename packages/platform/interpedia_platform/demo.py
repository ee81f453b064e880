"""The demo: on first run, build a browsable SAE for the packaged model with the real tools.

Every step is a command users run themselves (`interpedia train`, `interpedia
dashboards`, `interpedia explain`, ...), called as a subprocess so the demo
exercises exactly what users get. The feature map and the evaluations are jobs:
training and dashboards queue them, and the worker computes them once the services
are up, so they do not delay the first page. Steps whose result is already stored are
skipped, so the second `make demo` goes straight to serving. Ctrl-C stops the
step running within seconds, with its state saved (`children.run_step`), and the
next `make demo` resumes it. Sizes are chosen
so the first run fits in about 15 minutes on two CPU cores; environment
variables (`INTERPEDIA_DEMO_*`) change them.

The demo's transcoder set (for attribution graphs) is built AFTER the services are up,
so the first page is no later for it (`start_transcoders`): training is a queued job
(`interpedia train --architecture transcoder --register tc-demo --queue`), a recorded run
with per-layer metrics like an SAE run's; the job registers the set and queues each
layer's dashboards; once the set is registered, the example graph of a fixed prompt is
asked of the graph service (a graph job like any). A rerun queues only what is missing.
"""

import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from interpedia_clients.base import ServiceError
from interpedia_clients.graph import GraphClient, models
from interpedia_core.errors import ConfigurationError
from interpedia_core.settings import SharedSecretSettings
from interpedia_core.stopping import Stopped
from interpedia_platform.children import run_step


class DemoSettings(SharedSecretSettings):
    """What the demo builds; the shared secret (read like every service's, from
    INTERPEDIA_SECRET or INTERPEDIA_SECRET_FILE) goes with the example graph's request."""

    model_config = SettingsConfigDict(
        env_prefix="INTERPEDIA_DEMO_", extra="ignore", populate_by_name=True
    )

    model_id: str = Field(
        "smollm2-135m",
        validation_alias=AliasChoices("INTERPEDIA_DEMO_MODEL_ID", "MODEL_ID", "model_id"),
        description="Model the demo SAE is trained on (MODEL_ID works too).",
    )
    layer: int = Field(6, ge=0, description="Residual-stream layer of the demo SAE.")
    source_set: str = Field("res-demo", description="Source set name of the demo SAE.")
    d_sae: int = Field(4608, gt=0, description="Features in the demo SAE.")
    k: int = Field(32, gt=0, description="Active features per token (TopK).")
    train_tokens: int = Field(800_000, gt=0, description="Tokens the demo SAE trains on.")
    dead_feature_window: int = Field(
        10, gt=0, description="Steps (of 4096 tokens) without firing before AuxK revives a feature."
    )
    dashboard_prompts: int = Field(
        768, gt=0, description="128-token prompts scanned for dashboards."
    )
    score_sample: int = Field(50, ge=0, description="Explanations scored by the embedding scorer.")
    # The transcoder set and example graph, built after the services are up. Sized so both
    # are ready about 20 minutes into a first run on two quiet cores (README, "The demo").
    transcoders: bool = Field(
        True, description="Build the demo transcoder set and example graph (needs the graph env)."
    )
    transcoder_set: str = Field("tc-demo", description="Source set name of the demo transcoders.")
    transcoder_layers: str = Field("all", description="Layers with a transcoder (all, 0-3, ...).")
    transcoder_d_sae: int = Field(512, gt=0, description="Features per layer's transcoder.")
    transcoder_k: int = Field(16, gt=0, description="Active features per token (BatchTopK).")
    transcoder_activation: str = Field("topk", description="relu | jumprelu | topk.")
    transcoder_skip: bool = Field(
        True, description="A linear skip (W_skip, fitted in closed form) beside the features."
    )
    transcoder_tokens: int = Field(
        40_000, gt=0, description="Tokens every layer's transcoder trains on (one pass)."
    )
    transcoder_batch_size: int = Field(256, gt=0, description="Tokens per transcoder step.")
    transcoder_context_size: int = Field(128, gt=1, description="Tokens per training context.")
    transcoder_max_contexts: int | None = Field(
        None, gt=0, description="Read at most this many contexts of the corpus (tests: few)."
    )
    transcoder_dashboard_prompts: int = Field(
        32, gt=0, description="128-token prompts scanned for each layer's dashboards."
    )
    graph_prompt: str = Field(
        "The capital of France is", description="Prompt of the demo's example graph."
    )
    graph_slug: str = Field("demo-capital-of-france", description="Slug of the example graph.")
    graph_max_feature_nodes: int = Field(
        256, gt=0, description="Feature nodes traced for the example graph."
    )

    @property
    def source_id(self) -> str:
        return f"{self.layer}-{self.source_set}"

    @property
    def hook_name(self) -> str:
        return f"blocks.{self.layer}.hook_resid_post"


@dataclass(frozen=True)
class DemoState:
    trained: bool
    has_dashboards: bool
    explained: int  # features with an explanation
    fired: int  # features that fired on the dashboard prompts (the ones that can be explained)
    has_umap: bool = False  # the feature map is stored
    evaluated: int = 0  # evaluation types stored (core, absorption)


def demo_state(database_url: str, settings: DemoSettings) -> DemoState:
    with psycopg.connect(database_url) as conn:
        source = conn.execute(
            "SELECT has_dashboards, has_umap FROM sources WHERE model_id = %s AND id = %s",
            (settings.model_id, settings.source_id),
        ).fetchone()
        explained, fired, evaluated = conn.execute(
            "SELECT (SELECT count(DISTINCT index) FROM explanations"
            "        WHERE model_id = %(m)s AND source_id = %(s)s),"
            "       (SELECT count(DISTINCT index) FROM activations"
            "        WHERE model_id = %(m)s AND source_id = %(s)s),"
            "       (SELECT count(*) FROM evals WHERE model_id = %(m)s AND source_id = %(s)s)",
            {"m": settings.model_id, "s": settings.source_id},
        ).fetchone()
    if source is None:
        return DemoState(False, False, explained, fired)
    return DemoState(True, source[0], explained, fired, source[1], evaluated)


def _interpedia(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "interpedia"), *args]


def demo_steps(settings: DemoSettings, state: DemoState) -> list[tuple[str, list[str]]]:
    """The commands still to run, each with a title."""
    s = settings
    steps = []
    if not state.trained:
        steps.append(
            (
                "train the demo SAE",
                _interpedia(
                    "train",
                    "--model",
                    s.model_id,
                    "--hook",
                    s.hook_name,
                    "--architecture",
                    "topk",
                    "--d-sae",
                    str(s.d_sae),
                    "--k",
                    str(s.k),
                    "--total-tokens",
                    str(s.train_tokens),
                    # Measured on SmolLM2's layer 6: lr 3e-4 (SAELens's default) leaves
                    # explained variance near 0 after 250k tokens; 2e-3 with inputs scaled
                    # to norm sqrt(d_in) reaches about 0.87.
                    "--lr",
                    "0.002",
                    "--normalize-activations",
                    "expected_average_only_in",
                    # AuxK (on by default) revives latents silent for this many steps; the
                    # default window (1000 steps) is longer than the demo's 195, and the
                    # decoder bias starts at the mean input (the default). bench/train/demo.py
                    # measures the dead fraction on held-out text with and without both.
                    "--dead-feature-window",
                    str(s.dead_feature_window),
                    "--out",
                    str(s.data_dir / "saes" / s.source_id),
                    "--register",
                    s.source_set,
                ),
            )
        )
    if not state.has_dashboards:
        steps.append(
            (
                "compute feature dashboards",
                _interpedia(
                    "dashboards",
                    "--model",
                    s.model_id,
                    "--source",
                    s.source_id,
                    "--n-prompts",
                    str(s.dashboard_prompts),
                ),
            )
        )
    if not state.has_dashboards or state.explained < state.fired:
        steps.append(
            (
                "explain every feature (offline explainer)",
                _interpedia(
                    "explain",
                    s.model_id,
                    s.source_id,
                    "--method",
                    "offline",
                ),
            )
        )
        steps.append(
            (
                "embed the explanations",
                _interpedia(
                    "embed-explanations",
                    "--model",
                    s.model_id,
                    "--source",
                    s.source_id,
                ),
            )
        )
        steps.append(
            (
                "score a sample of explanations",
                _interpedia(
                    "score",
                    s.model_id,
                    s.source_id,
                    "--sample",
                    str(s.score_sample),
                ),
            )
        )
    # Training queues the evaluations and the last dashboards queue the map (jobs the
    # worker runs once the services are up); a database from before either queues them here.
    if state.trained and state.evaluated < len(EVAL_KINDS):
        steps.append(
            (
                "queue the evaluations (the worker runs them)",
                _interpedia("evaluate", "--model", s.model_id, "--source", s.source_id, "--queue"),
            )
        )
    if state.has_dashboards and not state.has_umap:
        steps.append(
            (
                "queue the feature map (the worker computes it)",
                _interpedia("umap", "--model", s.model_id, "--source", s.source_id, "--queue"),
            )
        )
    return steps


EVAL_KINDS = ("core", "absorption_first_letter")

# Set either and the demo serves those SAEs (e.g. `gpt2-small-res-jb:blocks.8.hook_resid_pre`).
SAE_SOURCE_VARIABLES = {"INTERPEDIA_INFERENCE_SAE_SOURCES", "SAE_SOURCES"}


def sae_sources_configured() -> bool:
    """Whether SAE sources are set (an empty variable means unset, as in the settings)."""
    return any(os.environ.get(variable) for variable in SAE_SOURCE_VARIABLES)


def demo_admin_key(settings: DemoSettings) -> str:
    """The demo's admin API key: made once, kept (owner-only) in the data folder."""
    path = settings.data_dir / "demo-admin-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def prepare_demo(database_url: str, echo: Callable[[str], None] = print) -> dict[str, str]:
    """Run whatever demo steps are not done yet; returns env that points services at the demo."""
    settings = DemoSettings()
    served = {"INTERPEDIA_INFERENCE_MODEL_ID": settings.model_id}
    if not os.environ.get("INTERPEDIA_WEBAPI_ADMIN_BOOTSTRAP_KEY"):
        key = demo_admin_key(settings)
        served["INTERPEDIA_WEBAPI_ADMIN_BOOTSTRAP_KEY"] = key
        echo(f"==> admin API key (paste it into the pages' key box): {key}")
    if sae_sources_configured():
        echo("==> serving the configured SAE sources (no demo SAE is built)")
        return served
    steps = demo_steps(settings, demo_state(database_url, settings))
    if not steps:
        echo("==> demo data ready (stored)")
        return served
    env = os.environ | {"DATABASE_URL": database_url}
    for number, (title, command) in enumerate(steps, 1):
        echo(f"==> [{number}/{len(steps)}] {title}")
        started = time.monotonic()
        try:
            returncode = run_step(command, env)
        except Stopped as exc:
            raise exc.at(f"during '{title}'; rerun `make demo` to resume") from None
        if returncode != 0:
            raise ConfigurationError(
                f"demo step '{title}' failed (exit {returncode}); rerun `make demo` to resume"
            )
        echo(f"    done in {time.monotonic() - started:.0f}s")
    return served


@dataclass(frozen=True)
class TranscoderState:
    registered: bool  # the set is a source set of the model (trained)
    graph_stored: bool  # the example graph is stored


def transcoder_state(database_url: str, settings: DemoSettings) -> TranscoderState:
    with psycopg.connect(database_url) as conn:
        registered, graph_stored = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM source_sets WHERE model_id = %(m)s AND name = %(t)s),"
            "       EXISTS (SELECT 1 FROM graphs WHERE model_id = %(m)s AND slug = %(g)s)",
            {"m": settings.model_id, "t": settings.transcoder_set, "g": settings.graph_slug},
        ).fetchone()
    return TranscoderState(registered, graph_stored)


def transcoder_command(settings: DemoSettings) -> list[str]:
    """`interpedia train --architecture transcoder ... --queue`: the run a worker trains."""
    s = settings
    return _interpedia(
        "train",
        "--model",
        s.model_id,
        "--architecture",
        "transcoder",
        "--layers",
        s.transcoder_layers,
        "--activation",
        s.transcoder_activation,
        "--d-sae",
        str(s.transcoder_d_sae),
        "--k",
        str(s.transcoder_k),
        "--total-tokens",
        str(s.transcoder_tokens),
        "--batch-size",
        str(s.transcoder_batch_size),
        "--context-size",
        str(s.transcoder_context_size),
        # Measured on layers 3, 11 and 20 over the demo's 156 steps (bench/README.md,
        # "Fidelity of a trained set"): 3e-3 leaves the features explaining ~5% of what the
        # skip misses and the BatchTopK threshold unsettled (held-out L0 ~40 against k 16);
        # 1e-2 doubles what they explain and settles L0 at k; 3e-2 kills them (L0 ~1).
        "--lr",
        "0.01",
        # A checkpoint of 30 layers (weights and Adam state) takes seconds: every 50 steps.
        "--checkpoint-every",
        "50",
        "--out",
        str(s.data_dir / "transcoders" / s.transcoder_set),
        "--register",
        s.transcoder_set,
        "--dashboard-prompts",
        str(s.transcoder_dashboard_prompts),
        *(["--max-contexts", str(s.transcoder_max_contexts)] if s.transcoder_max_contexts else []),
        # The closed-form skip is most of what so few steps can reach (held-out FVU 0.49 with
        # it, about 1 without, in bench/README "graph (fidelity)"), at the cost of one ridge fit.
        *(["--skip"] if s.transcoder_skip else []),
        "--queue",
    )


def example_graph_request(settings: DemoSettings) -> models.GraphCreateRequest:
    return models.GraphCreateRequest(
        model_id=settings.model_id,
        transcoder_set=settings.transcoder_set,
        prompt=settings.graph_prompt,
        slug=settings.graph_slug,
        max_feature_nodes=settings.graph_max_feature_nodes,
    )


def request_example_graph(settings: DemoSettings, graph_url: str) -> int:
    """Ask the graph service for the example graph; returns its job id."""
    with GraphClient(graph_url, secret=settings.shared_secret, timeout=60.0) as client:
        return client.create_graph(example_graph_request(settings)).job_id


def wait_and_request_graph(
    database_url: str,
    settings: DemoSettings,
    graph_url: str,
    stop: threading.Event,
    echo: Callable[[str], None],
    poll_seconds: float = 5.0,
) -> int | None:
    """Once the set is registered, queue the example graph (unless it is stored); returns
    the graph job id, or None if stopped first or already stored."""
    while not stop.is_set():
        try:
            state = transcoder_state(database_url, settings)
        except psycopg.OperationalError:  # the database stopped with the platform
            return None
        if state.graph_stored:
            return None
        if state.registered:
            try:
                job_id = request_example_graph(settings, graph_url)
            except (ServiceError, httpx.HTTPError) as exc:
                echo(f"==> example graph not queued: {exc}")
                return None
            echo(f"==> transcoders ready: example graph queued (graph job {job_id})")
            return job_id
        stop.wait(poll_seconds)
    return None


def start_transcoders(
    database_url: str,
    env: dict[str, str],
    graph_url: str | None,
    echo: Callable[[str], None] = print,
) -> threading.Event | None:
    """After the services are up: queue the demo transcoder run (unless the set exists) and
    watch, in a daemon thread, for the set to be registered to queue the example graph.
    Returns the event that stops the watch (None when there is nothing to do)."""
    settings = DemoSettings()
    if not settings.transcoders or sae_sources_configured():
        return None
    if graph_url is None:
        echo("==> demo transcoders skipped: no graph service (`make setup` builds its env)")
        return None
    state = transcoder_state(database_url, settings)
    if state.graph_stored:
        return None
    if not state.registered:
        echo(
            f"==> queueing the demo transcoders ({settings.transcoder_set}): the worker trains "
            "them; their run, dashboards and example graph appear as they finish"
        )
        returncode = run_step(transcoder_command(settings), env)
        if returncode != 0:
            echo(f"    queueing the transcoders failed (exit {returncode}); see above")
            return None
    stop = threading.Event()
    threading.Thread(
        target=wait_and_request_graph,
        args=(database_url, settings, graph_url, stop, echo),
        name="demo-example-graph",
        daemon=True,
    ).start()
    return stop
