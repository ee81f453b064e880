"""The graph service behind the web API, for the graph API, client and page tests.

The graph service runs from its own environment (`.venv-graph`, built by `make setup`) as
real processes on the test database, with a quick transcoder set fitted by its CLI; the
web API talks to it over HTTP. Graphs are traced with few feature nodes to stay quick.
"""

from collections.abc import Iterator

import pytest

from interpedia_core.settings import CommonSettings
from interpedia_testing.graph import GraphService, fit_quick_set, graph_env
from interpedia_testing.servers import ThreadedServer

GRAPH_MODEL, GRAPH_SET = "smollm2-135m", "tc-web"


@pytest.fixture(scope="session")
def graph_service(database_url: str, repo_root, tmp_path_factory) -> Iterator[GraphService]:
    bin_dir = CommonSettings().graph_bin
    if not (bin_dir / "interpedia-graph").exists():
        pytest.fail(f"no graph environment at {bin_dir.parent}: run `make setup`")
    env = graph_env(
        database_url,
        tmp_path_factory.mktemp("graph-data"),
        INTERPEDIA_GRAPH_DEFAULT_MAX_FEATURE_NODES="24",
        INTERPEDIA_GRAPH_DEFAULT_BATCH_SIZE="24",
    )
    fit_quick_set(bin_dir, env, GRAPH_SET, repo_root / ".cache" / "test-transcoders" / GRAPH_SET)
    service = GraphService(bin_dir, env).start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def graph_web(seeded, database_url, graph_service, tmp_path_factory) -> Iterator[ThreadedServer]:
    """A live web API (real HTTP) in front of the graph service."""
    from conftest import live_app

    app = live_app(database_url, tmp_path_factory.mktemp("graph-web"), graph_url=graph_service.url)
    with ThreadedServer(app) as server:
        yield server


@pytest.fixture(scope="session")
def activity_web(make_database, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """(web API URL, its database) for what the graph page follows of work under way: the
    graph service without a worker, so graph jobs stay at the states tests put them in
    (`interpedia_testing.graph.report_graph_job`), on a database of their own."""
    from conftest import live_app

    bin_dir = CommonSettings().graph_bin
    if not (bin_dir / "interpedia-graph").exists():
        pytest.fail(f"no graph environment at {bin_dir.parent}: run `make setup`")
    database_url = make_database("graph_activity")
    env = graph_env(database_url, tmp_path_factory.mktemp("activity-graph"))
    service = GraphService(bin_dir, env).start(worker=False)
    app = live_app(database_url, tmp_path_factory.mktemp("activity-web"), graph_url=service.url)
    try:
        with ThreadedServer(app) as server:
            yield server.url, database_url
    finally:
        service.stop()
