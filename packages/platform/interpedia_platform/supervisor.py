"""Running the whole platform as one command (`interpedia up`, `make demo`).

The supervisor starts the embedded database when no `DATABASE_URL` is set (and
stops it at the end, since it started it), migrates, then runs every service
and one worker as child processes, each in its own session so that Ctrl-C
reaches only the supervisor, which then stops them in order. Children die with
the supervisor even if it is killed (Linux parent-death signal), so nothing is
left orphaned. It talks to the services only over HTTP (their /health), never
by importing them.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import typer

from interpedia_core.errors import ConfigurationError
from interpedia_core.serving import check_port_free
from interpedia_core.settings import CommonSettings
from interpedia_db import migrate
from interpedia_db.connect import embedded_server, resolve_database_url
from interpedia_platform.children import die_with_parent
from interpedia_platform.demo import prepare_demo, sae_sources_configured, start_transcoders

cli = typer.Typer()


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    command: list[str]
    port_variable: str | None = None
    default_port: int | None = None

    def port(self, env: Mapping[str, str] | None = None) -> int | None:
        """The port the service gets from `env` (default: this process's environment)."""
        if self.port_variable is None:
            return None
        return int(
            (os.environ if env is None else env).get(self.port_variable) or self.default_port
        )

    def url(self, env: Mapping[str, str] | None = None) -> str | None:
        port = self.port(env)
        return f"http://127.0.0.1:{port}" if port else None


def _script(name: str) -> str:
    """A console script installed beside this Python (the venv's bin/)."""
    return str(Path(sys.executable).parent / name)


def graph_services(settings: CommonSettings) -> list[ServiceSpec]:
    """The graph service and its worker, run from the graph's own environment (if built)."""
    command = str(settings.graph_bin / "interpedia-graph")
    if not Path(command).exists():
        return []
    return [
        ServiceSpec("graph", [command, "serve"], "INTERPEDIA_GRAPH_PORT", 5005),
        ServiceSpec("graph-worker", [command, "worker"]),
    ]


def platform_services(settings: CommonSettings) -> list[ServiceSpec]:
    return [
        ServiceSpec(
            "inference",
            [_script("interpedia-inference"), "serve"],
            "INTERPEDIA_INFERENCE_PORT",
            5002,
        ),
        ServiceSpec(
            "autointerp",
            [_script("interpedia-autointerp"), "serve"],
            "INTERPEDIA_AUTOINTERP_PORT",
            5003,
        ),
        ServiceSpec(
            "trainer", [_script("interpedia-trainer"), "serve"], "INTERPEDIA_TRAINER_PORT", 5004
        ),
        ServiceSpec(
            "webapi", [_script("interpedia-webapi"), "serve"], "INTERPEDIA_WEBAPI_PORT", 3000
        ),
        ServiceSpec("worker", [_script("interpedia"), "worker"]),
        *graph_services(settings),
    ]


def service_urls_env(
    services: list[ServiceSpec], env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Where each service finds the others, unless the environment (`env`, default this
    process's) says otherwise."""
    env = os.environ if env is None else env
    urls = {s.name: s.url(env) for s in services if s.url(env)}
    defaults = {
        "INTERPEDIA_WEBAPI_INFERENCE_URL": urls.get("inference"),
        "INTERPEDIA_WEBAPI_AUTOINTERP_URL": urls.get("autointerp"),
        "INTERPEDIA_WEBAPI_GRAPH_URL": urls.get("graph"),
    }
    return {k: v for k, v in defaults.items() if v and not env.get(k)}


@dataclass
class Supervisor:
    services: list[ServiceSpec]
    env: dict[str, str]
    log_dir: Path
    echo: Callable[[str], None] = typer.echo
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start_all(self) -> None:
        # A port already taken (often an Interpedia still running) would let /health answer
        # for someone else's service: refuse before starting anything.
        for spec in self.services:
            if spec.port_variable is not None:
                check_port_free("127.0.0.1", int(spec.port(self.env)), spec.port_variable)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.services:
            log = open(self.log_dir / f"{spec.name}.log", "ab")  # noqa: SIM115 - child owns it
            self.processes[spec.name] = subprocess.Popen(
                spec.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def wait_healthy(self, timeout: float) -> None:
        pending = {s.name: s.url(self.env) for s in self.services if s.url(self.env)}
        deadline = time.monotonic() + timeout
        while pending:
            for name, url in list(pending.items()):
                self._check_alive(name)
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        self.echo(f"  {name:<11} ready  {url}")
                        del pending[name]
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                raise ConfigurationError(
                    f"{', '.join(pending)} did not become healthy within {timeout:.0f}s; "
                    f"see the logs in {self.log_dir}"
                )
            time.sleep(0.3)
        for spec in self.services:
            self._check_alive(spec.name)

    def _check_alive(self, name: str) -> None:
        process = self.processes.get(name)
        if process is not None and process.poll() is not None:
            raise ConfigurationError(
                f"{name} exited with code {process.returncode}; see {self.log_dir / name}.log"
            )

    def watch(self) -> None:
        """Block until a child dies (an error) or we are told to stop (SIGINT/SIGTERM)."""
        while True:
            for name in self.processes:
                self._check_alive(name)
            time.sleep(0.5)

    def stop_all(self, grace: float = 15.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stored_sae_env(database_url: str, model_id: str) -> dict[str, str]:
    """Point the inference service at the SAEs stored for its model (one source set)."""
    if sae_sources_configured():
        return {}
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT weights_uri, set_name FROM sources WHERE model_id = %s "
            "AND weights_uri IS NOT NULL AND inference_enabled ORDER BY set_name, layer",
            (model_id,),
        ).fetchall()
    if not rows:
        return {}
    first_set = rows[0][1]
    folders = [uri for uri, set_name in rows if set_name == first_set]
    return {
        "INTERPEDIA_INFERENCE_SAE_SOURCES": ",".join(folders),
        "INTERPEDIA_INFERENCE_SAE_SOURCE_SET": first_set,
    }


# (database URL, the services' environment, the graph service's URL or None) → an event
# that stops what it started in the background (set when the platform stops), or None.
AfterServices = Callable[[str, dict[str, str], str | None], threading.Event | None]


def run_platform(
    before_services: Callable[[str], dict[str, str]] | None = None,
    health_timeout: float = 600.0,
    after_services: AfterServices | None = None,
) -> None:
    """Database, migrations, `before_services(database_url)` (extra environment for the
    services), then every service until Ctrl-C; `after_services` once they are healthy
    (work that must not delay the first page)."""
    settings = CommonSettings()
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    server = None if settings.database_url else embedded_server(settings)
    owns_server = server is not None and server.running_pid() is None
    supervisor: Supervisor | None = None
    background: threading.Event | None = None
    try:
        typer.echo("==> database")
        database_url = resolve_database_url(settings, require_schema=False)
        migrate.upgrade(database_url)
        typer.echo(f"  postgres    ready  {database_url}")
        extra_env = before_services(database_url) if before_services is not None else {}
        model_id = os.environ.get("MODEL_ID") or os.environ.get(
            "INTERPEDIA_INFERENCE_MODEL_ID", "smollm2-135m"
        )
        services = platform_services(settings)
        if not any(s.name == "graph" for s in services):
            typer.echo(
                f"  graph       skipped: no graph environment at {settings.graph_bin.parent} "
                "(`make setup` builds it)"
            )
        env = (
            os.environ
            | {"DATABASE_URL": database_url}
            | service_urls_env(services)
            | stored_sae_env(database_url, model_id)
            | extra_env
        )
        supervisor = Supervisor(services, env, settings.data_dir / "logs")
        typer.echo(f"==> services (logs in {supervisor.log_dir})")
        supervisor.start_all()
        supervisor.wait_healthy(health_timeout)
        web = next(s for s in services if s.name == "webapi").url()
        typer.secho(
            f"\nInterpedia is up: open {web}  (Ctrl-C stops everything)",
            fg=typer.colors.GREEN,
            bold=True,
        )
        if after_services is not None:
            graph = next((s.url(env) for s in services if s.name == "graph"), None)
            background = after_services(database_url, env, graph)
        supervisor.watch()
    except KeyboardInterrupt:
        typer.echo("\n==> stopping")
    finally:
        if background is not None:
            background.set()
        if supervisor is not None:
            supervisor.stop_all()
        if owns_server and server is not None:
            server.stop()
            typer.echo("  postgres    stopped")


@cli.command()
def up() -> None:
    """Run every service and a worker on the configured database until Ctrl-C."""
    run_platform()  # `interpedia` turns a domain error into one line


@cli.command()
def demo() -> None:
    """Build the demo SAE on first run (train, dashboards, explanations), then run everything;
    the demo transcoders and their example graph are built by the workers meanwhile."""
    run_platform(
        lambda database_url: prepare_demo(database_url, typer.echo),
        after_services=lambda database_url, env, graph_url: start_transcoders(
            database_url, env, graph_url, typer.echo
        ),
    )
