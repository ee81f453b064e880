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
"""

import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from interpedia_core.errors import ConfigurationError
from interpedia_core.settings import CommonSettings
from interpedia_core.stopping import Stopped
from interpedia_platform.children import run_step


class DemoSettings(CommonSettings):
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
