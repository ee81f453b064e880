"""The demo runs only the steps whose results are not stored yet, so a rerun starts at once."""

import pytest

from interpedia_platform.demo import (
    DemoSettings,
    DemoState,
    demo_steps,
    start_transcoders,
    transcoder_command,
)


def _titles(state: DemoState) -> list[str]:
    return [title for title, _ in demo_steps(DemoSettings(), state)]


def test_a_fresh_database_runs_every_step() -> None:
    titles = _titles(DemoState(trained=False, has_dashboards=False, explained=0, fired=0))
    assert titles[:2] == ["train the demo SAE", "compute feature dashboards"]
    assert len(titles) == 5


def test_a_finished_demo_runs_nothing() -> None:
    # Dead features cannot be explained: every feature that fired having one is complete.
    done = DemoState(True, True, explained=2299, fired=2299, has_umap=True, evaluated=2)
    assert _titles(done) == []


def test_a_demo_from_before_maps_and_evaluations_queues_them() -> None:
    steps = demo_steps(DemoSettings(), DemoState(True, True, explained=2299, fired=2299))
    assert [command[1] for _, command in steps] == ["evaluate", "umap"]
    assert all(command[-1] == "--queue" for _, command in steps)


def test_an_interrupted_explain_step_resumes_there() -> None:
    titles = _titles(DemoState(trained=True, has_dashboards=True, explained=100, fired=2299))
    assert titles[0] == "explain every feature (offline explainer)"
    assert "train the demo SAE" not in titles


def test_the_demo_trains_with_the_settings_it_documents() -> None:
    (_, train), *_ = demo_steps(
        DemoSettings(), DemoState(trained=False, has_dashboards=False, explained=0, fired=0)
    )
    assert train[train.index("--lr") + 1] == "0.002"
    assert train[train.index("--register") + 1] == "res-demo"
    # AuxK is the trainer's default; the demo's window lets it act within its 195 steps.
    assert "--aux-loss-coefficient" not in train and "--b-dec-init" not in train
    assert int(train[train.index("--dead-feature-window") + 1]) < 800_000 // 4096


def test_the_demo_queues_its_transcoders_with_the_settings_it_documents() -> None:
    settings = DemoSettings()
    command = transcoder_command(settings)
    assert command[1:4] == ["train", "--model", "smollm2-135m"]
    assert command[-1] == "--queue"  # a worker trains them: the pages come first
    assert command[command.index("--register") + 1] == "tc-demo"
    assert command[command.index("--layers") + 1] == "all"  # a graph needs every layer
    assert command[command.index("--out") + 1].endswith("transcoders/tc-demo")
    assert "--max-contexts" not in command
    assert "--skip" in command  # the closed-form skip carries the demo's fidelity
    assert command[command.index("--lr") + 1] == "0.01"  # measured: 3e-3 barely trains


def test_tests_size_the_transcoders_down_through_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("INTERPEDIA_DEMO_TRANSCODER_D_SAE", "32")
    monkeypatch.setenv("INTERPEDIA_DEMO_TRANSCODER_MAX_CONTEXTS", "24")
    command = transcoder_command(DemoSettings())
    assert command[command.index("--d-sae") + 1] == "32"
    assert command[command.index("--max-contexts") + 1] == "24"


def test_without_a_graph_service_the_demo_skips_its_transcoders_and_says_why(
    monkeypatch,
) -> None:
    monkeypatch.delenv("INTERPEDIA_INFERENCE_SAE_SOURCES", raising=False)
    monkeypatch.delenv("SAE_SOURCES", raising=False)
    said: list[str] = []
    # No database is touched: the URL points nowhere.
    assert start_transcoders("postgresql://nowhere:1/x", {}, None, said.append) is None
    assert said == ["==> demo transcoders skipped: no graph service (`make setup` builds its env)"]
    monkeypatch.setenv("INTERPEDIA_DEMO_TRANSCODERS", "false")
    said.clear()
    nowhere = "http://127.0.0.1:1"
    assert start_transcoders("postgresql://nowhere:1/x", {}, nowhere, said.append) is None
    assert said == []


def test_the_example_graph_request_reads_the_secret_as_every_service_does(
    monkeypatch, tmp_path
) -> None:
    monkeypatch.delenv("INTERPEDIA_SECRET", raising=False)
    monkeypatch.delenv("INTERPEDIA_SECRET_FILE", raising=False)
    assert DemoSettings().shared_secret is None
    monkeypatch.setenv("INTERPEDIA_SECRET", "from-variable")
    assert DemoSettings().shared_secret == "from-variable"
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    monkeypatch.setenv("INTERPEDIA_SECRET_FILE", str(secret_file))
    assert DemoSettings().shared_secret == "from-variable"  # the variable comes first
    monkeypatch.setenv("INTERPEDIA_SECRET", "")  # compose's ${INTERPEDIA_SECRET:-}: unset
    assert DemoSettings().shared_secret == "from-file"
    monkeypatch.setenv("INTERPEDIA_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="INTERPEDIA_SECRET_FILE"):
        DemoSettings()
