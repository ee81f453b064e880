"""Committed specs, generated clients and .env.example are current (`make generate`)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("generate", ROOT / "scripts" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _generator()


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    generate.generate_all(out)
    return out


@pytest.mark.parametrize("service", generate.SERVICES)
def test_spec_is_current(service):
    committed = (ROOT / "schemas" / f"{service}.json").read_text()
    assert generate.spec_text(generate.render_spec(service)) == committed, (
        f"schemas/{service}.json is stale: run `make generate`"
    )


@pytest.mark.parametrize("service", generate.SERVICES)
@pytest.mark.parametrize("part", ["models.py", "client.py"])
def test_client_is_current(regenerated, service, part):
    relative = Path("packages/clients/interpedia_clients") / service / part
    assert (regenerated / relative).read_text() == (ROOT / relative).read_text(), (
        f"{relative} is stale: run `make generate`"
    )


def test_env_example_is_current(regenerated):
    assert (regenerated / ".env.example").read_text() == (ROOT / ".env.example").read_text(), (
        ".env.example is stale: run `make generate`"
    )


@pytest.mark.parametrize("service", generate.SERVICES)
def test_every_operation_is_readable_and_documented(service):
    spec = generate.render_spec(service)
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            assert op["operationId"].isidentifier(), f"{method} {path}: {op['operationId']}"
            assert "200" in op["responses"], f"{method} {path} documents no 200 answer"
            assert op.get("description") or op.get("summary"), f"{method} {path} has no docs"


def test_streams_are_read_as_their_event_models():
    """Events are what the spec's `itemSchema` names, and a route that only streams has no
    plain method (it would read the stream as one JSON answer)."""
    import inspect

    from interpedia_clients.inference import client as inference_client
    from interpedia_clients.webapi import client

    assert not hasattr(client.WebapiClient, "imports_events")
    assert not hasattr(client.WebapiClient, "lens_prompt")  # NDJSON only
    for owner, method, event in (
        (client.WebapiClient, "stream_steer", "SteerStreamEvent"),
        (client.WebapiClient, "stream_imports_events", "ImportProgress"),
        (client.WebapiClient, "stream_lens_prompt", "LensFrame"),
        (inference_client.InferenceClient, "stream_lens_prompt", "LensTokenMessage"),
    ):
        returned = inspect.signature(getattr(owner, method)).return_annotation
        assert f"models.{event}" in str(returned), returned


def test_request_models_stay_plain_models():
    """A spec rule ("exactly one of features or vectors", a `oneOf`) once generated the steer
    requests as RootModel unions: the client then never asked for the stream it wanted."""
    from interpedia_clients.inference import models

    for model in (models.SteerCompletionRequest, models.SteerCompletionChatRequest):
        assert {"features", "vectors", "stream"} <= set(model.model_fields)
