"""The demo's transcoder step end to end, at a tiny size, on the packaged model.

`start_transcoders` (what `make demo` runs once the services are up) queues the transcoder
run through the real `interpedia train ... --queue`; a real trainer worker (`interpedia
worker`) trains all 30 layers as a recorded run, registers the set and queues each layer's
dashboards; the real graph service and its worker (its own environment) trace the example
graph once the set is registered. Then: the run tracker holds the run with per-layer
metrics like an SAE run's, the set is a source set, one layer's dashboards job succeeded
and its feature page shows examples, and the example graph is stored.
"""

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from interpedia_core.settings import CommonSettings
from interpedia_testing.graph import GraphService, graph_env
from interpedia_testing.servers import ThreadedServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
INTERPEDIA = Path(sys.executable).parent / "interpedia"
MODEL, SET, SLUG = "smollm2-135m", "tc-demo", "demo-test-graph"
TINY = {  # 30 layers × 32 features, two steps: seconds of training
    "INTERPEDIA_DEMO_TRANSCODER_D_SAE": "32",
    "INTERPEDIA_DEMO_TRANSCODER_K": "4",
    "INTERPEDIA_DEMO_TRANSCODER_TOKENS": "256",
    "INTERPEDIA_DEMO_TRANSCODER_BATCH_SIZE": "128",
    "INTERPEDIA_DEMO_TRANSCODER_CONTEXT_SIZE": "64",
    "INTERPEDIA_DEMO_TRANSCODER_MAX_CONTEXTS": "24",
    "INTERPEDIA_DEMO_TRANSCODER_DASHBOARD_PROMPTS": "8",
    "INTERPEDIA_DEMO_GRAPH_SLUG": SLUG,
    "INTERPEDIA_DEMO_GRAPH_MAX_FEATURE_NODES": "16",
}


def _wait(what: str, check: Callable[[], object], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _one(database_url: str, query: str, *args: object) -> tuple | None:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, args).fetchone()


@pytest.fixture(scope="module")
def demo_stack(
    make_database: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str], GraphService]]:
    """A fresh database (no other test's jobs for the worker), a trainer worker and the
    graph service with its worker."""
    bin_dir = CommonSettings().graph_bin
    if not (bin_dir / "interpedia-graph").exists():
        pytest.fail(f"no graph environment at {bin_dir.parent}: run `make setup`")
    database_url = make_database("demo_transcoders")
    data = tmp_path_factory.mktemp("demo-tc")
    env = graph_env(
        database_url,
        data,
        INTERPEDIA_TRAINER_CORPUS=str(ROOT / ".cache" / "corpora" / "sotu"),
        INTERPEDIA_GRAPH_DEFAULT_BATCH_SIZE="16",
        **TINY,
    )
    worker = subprocess.Popen(
        [str(INTERPEDIA), "worker", "--queue", "trainer", "--heartbeat", "2"],
        env=env,
        start_new_session=True,
    )
    graph = GraphService(bin_dir, env).start()
    try:
        yield database_url, env, graph
    finally:
        graph.stop()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def test_the_demo_trains_registers_and_graphs_its_transcoders(
    demo_stack: tuple[str, dict[str, str], GraphService],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from interpedia_platform.demo import start_transcoders

    database_url, env, graph = demo_stack
    for name, value in env.items():
        if name.startswith("INTERPEDIA_") or name == "DATABASE_URL":
            monkeypatch.setenv(name, value)
    said: list[str] = []
    stop = start_transcoders(database_url, env, graph.url, said.append)
    assert stop is not None, said
    try:
        _wait(
            "the example graph",
            lambda: _one(database_url, "SELECT 1 FROM graphs WHERE slug = %s", SLUG),
            timeout=420,
        )
    finally:
        stop.set()
    assert any("example graph queued" in line for line in said), said

    # The run tracker: a succeeded run with per-layer metrics, like an SAE run's.
    run_id, status, name, final = _one(
        database_url,
        "SELECT id, status, name, final_metrics FROM training_runs WHERE architecture = %s",
        "transcoder",
    )
    assert (status, name) == ("succeeded", SET)
    assert {"eval/explained_variance", "eval/l0", "layer_0/fvu", "layer_29/dead_fraction"} <= set(
        final
    )
    last_step = _one(
        database_url,
        "SELECT step, n_tokens, values FROM training_metrics WHERE run_id = %s "
        "ORDER BY step DESC LIMIT 1",
        run_id,
    )
    assert last_step is not None and last_step[1] == 256
    assert {"l0", "fvu", "dead_fraction", "layer_29/l0", "layer_29/fvu"} <= set(last_step[2])

    # Registered as a source set, a source per layer.
    (n_sources,) = _one(
        database_url,
        "SELECT count(*) FROM sources s JOIN source_sets t ON t.model_id = s.model_id "
        "AND t.name = s.set_name WHERE t.name = %s AND t.type = 'transcoder'",
        SET,
    )
    assert n_sources == 30

    # The graph, stored with its transcoder set.
    stored = _one(database_url, "SELECT source_set_name, n_nodes FROM graphs WHERE slug = %s", SLUG)
    assert stored is not None and stored[0] == SET and stored[1] > 0

    # Layer 0's dashboards (queued by the run) succeed, and its feature page shows examples.
    def dashboards_done() -> object:
        return _one(
            database_url,
            "SELECT status FROM procrastinate.procrastinate_jobs WHERE task_name = "
            "'trainer:compute_dashboards' AND args->>'source_id' = %s AND status = 'succeeded'",
            f"0-{SET}",
        )

    _wait("layer 0's dashboards", dashboards_done, timeout=240)
    fired = _one(
        database_url,
        "SELECT index FROM activations WHERE model_id = %s AND source_id = %s "
        "ORDER BY max_value DESC LIMIT 1",
        MODEL,
        f"0-{SET}",
    )
    assert fired is not None
    from interpedia_webapi.app import create_app
    from interpedia_webapi.settings import WebapiSettings

    app = create_app(
        WebapiSettings(database_url=database_url, data_dir=tmp_path, graph_url=graph.url)
    )
    with ThreadedServer(app) as web:
        page = httpx.get(f"{web.url}/{MODEL}/0-{SET}/{fired[0]}", timeout=60)
        graph_page = httpx.get(f"{web.url}/{MODEL}/graph", timeout=60)
        trainings = httpx.get(
            f"{web.url}/api/graph/transcoder-trainings", params={"modelId": MODEL}, timeout=60
        ).json()
        graph_jobs = httpx.get(
            f"{web.url}/api/graph/jobs", params={"modelId": MODEL}, timeout=60
        ).json()
    assert page.status_code == 200
    assert "Top activations" in page.text and "No examples." not in page.text

    # The graph page follows the set's progress until every layer has its dashboards, and
    # the example graph's job, with a link to its page.
    (with_dashboards,) = _one(
        database_url, "SELECT count(*) FROM sources WHERE set_name = %s AND has_dashboards", SET
    )
    assert graph_page.status_code == 200 and f'<option value="{SET}">' in graph_page.text
    if with_dashboards < 30:  # read after the API: fewer then too
        (training,) = [t for t in trainings if t["name"] == SET]
        assert (training["status"], training["layerCount"]) == ("succeeded", 30)
        assert training["layers"][-1]["layer"] == 29
    (example,) = [j for j in graph_jobs if j["slug"] == SLUG]
    assert example["status"] == "succeeded"
    assert example["url"].endswith(f"/{MODEL}/graph?slug={SLUG}")
