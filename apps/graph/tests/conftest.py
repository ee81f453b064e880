"""Fixtures of the graph tests: a quick transcoder set on the packaged model, and the graph
service with a worker as processes on the test database (the way the supervisor runs them)."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from interpedia_testing.graph import GraphService, fit_quick_set, graph_env

SET = "tc-test"
MODEL = "smollm2-135m"
PROMPT = "The capital of France is"


@pytest.fixture(scope="session")
def graph_data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("graph-data")


@pytest.fixture(scope="session")
def quick_set(database_url: str, graph_data_dir: Path, repo_root: Path) -> str:
    """A quick set of 128 features per layer, fitted (once, kept in .cache) and registered."""
    fit_quick_set(
        Path(sys.executable).parent,
        graph_env(database_url, graph_data_dir),
        SET,
        repo_root / ".cache" / "test-transcoders" / SET,
    )
    return SET


@pytest.fixture(scope="session")
def graph_service(
    database_url: str, graph_data_dir: Path, quick_set: str
) -> Iterator[GraphService]:
    service = GraphService(
        Path(sys.executable).parent,
        graph_env(database_url, graph_data_dir, INTERPEDIA_GRAPH_MAX_QUEUED="2"),
    )
    service.start()
    try:
        yield service
    finally:
        service.stop()
