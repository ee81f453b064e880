"""Shared fixtures of the webapi suite: seeded data, fake upstream services, apps, servers."""

import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

# Tests run with --import-mode=importlib; make the factories importable by a unique name.
sys.path.insert(0, str(Path(__file__).parent))

from webapi_factories import store_feature_map_and_evals, write_export

MODEL, SOURCE, SOURCE_SET = "webapi-test", "6-res-jb", "res-jb"
N_FEATURES = 40
ADMIN_KEY = "admin-key-for-tests-0123456789"


class FakeInference:
    """Answers like the inference service: activation is the token's length, for predictability."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @staticmethod
    def _tokens(text: str) -> list[str]:
        words = text.split(" ")
        return [words[0]] + [" " + w for w in words[1:]]

    async def activation_single(self, request: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("activation_single", request))
        tokens = self._tokens(request["prompt"])
        values = [float(len(t.strip())) if "cat" in t else 0.0 for t in tokens]
        top = max(range(len(values)), key=values.__getitem__)
        return {
            "tokens": tokens,
            "activation": {"values": values, "max_value": values[top], "max_value_index": top},
        }

    async def activation_all(self, request: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("activation_all", request))
        tokens = self._tokens(request["prompt"])
        return {
            "tokens": tokens,
            "activations": [
                {
                    "source": SOURCE,
                    "index": i,
                    "values": [float(i)] * len(tokens),
                    "sum_values": float(i) * len(tokens),
                    "max_value": float(i),
                    "max_value_index": 0,
                }
                for i in (3, 2, 1)
            ],
            "counts": [[1]],
        }

    # Each token's top features by raw value, as inference ranks them: 39 first, then 8
    # (near its own max of 6.0, so the more specific one), then 1; "<bos>" is special.
    TOPK = ((39, 6.0), (8, 5.5), (1, 1.0))

    async def activation_topk_by_token(self, request: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("activation_topk_by_token", request))
        tokens = self._tokens(request["prompt"])
        return {
            "tokens": tokens,
            "results": [
                {
                    "token_position": i,
                    "token": t,
                    "is_special": t == "<bos>",
                    "top_features": [
                        {"feature_index": f, "activation_value": v}
                        for f, v in self.TOPK[: request["top_k"]]
                    ],
                }
                for i, t in enumerate(tokens)
            ],
        }

    async def activation_source(self, request: dict[str, Any]) -> dict[str, Any]:
        return {
            "results": [
                {"tokens": self._tokens(p), "activeFeatures": []} for p in request["prompts"]
            ]
        }

    def _steer(self, request: dict[str, Any]) -> dict[str, str]:
        prompt = request["prompt"] if isinstance(request["prompt"], str) else "chat"
        return {"DEFAULT": prompt + " and the dog slept.", "STEERED": prompt + " cats cats cats."}

    async def steer_completion(self, request: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("steer_completion", request))
        return {"outputs": [{"type": k, "output": v} for k, v in self._steer(request).items()]}

    async def steer_completion_stream(self, request: dict[str, Any]) -> AsyncIterator[Any]:
        self.calls.append(("steer_completion_stream", request))
        full = self._steer(request)
        for cut in (0.5, 1.0):
            yield {
                "outputs": [{"type": k, "output": v[: int(len(v) * cut)]} for k, v in full.items()]
            }

    async def steer_completion_chat(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"outputs": [{"type": k, "raw": v} for k, v in self._steer(request).items()]}

    async def tokenize(self, request: dict[str, Any]) -> dict[str, Any]:
        tokens = self._tokens(request["text"])
        return {
            "tokens": list(range(len(tokens))),
            "token_strings": tokens,
            "prepend_bos": request["prepend_bos"],
        }


class FakeAutointerp:
    def __init__(self) -> None:
        self.semantic: list[dict[str, Any]] = []

    async def explain_default(self, request: dict[str, Any]) -> dict[str, Any]:
        assert request["activations"]
        return {"explanation": "the word cat"}

    async def score_embedding(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"score": 0.875, "breakdown": []}

    async def search_explanations(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"results": self.semantic[: request["limit"]]}


class FakeUpstreams:
    def __init__(self) -> None:
        self.inference_client = FakeInference()
        self.autointerp_client = FakeAutointerp()
        self.has_autointerp = True

    def inference(self, model_id: str) -> FakeInference:
        return self.inference_client

    def autointerp(self) -> FakeAutointerp:
        return self.autointerp_client

    async def aclose(self) -> None:
        pass


@pytest.fixture(scope="session")
async def seeded(db_sessionmaker, tmp_path_factory) -> dict[str, Any]:
    """One imported export (model `webapi-test`) and an admin and a normal user."""
    from interpedia_webapi import accounts, feature_import

    root = tmp_path_factory.mktemp("webapi-export")
    export = write_export(root, MODEL, SOURCE, n_features=N_FEATURES, embedding_dims=256)
    async with db_sessionmaker.begin() as session:
        job = await feature_import.start_import(session, str(export))
    done = await feature_import.run_import(db_sessionmaker, job.id, work_dir=root / "work")
    assert done.status == "complete"
    async with db_sessionmaker.begin() as session:
        await accounts.ensure_bootstrap_admin(session, ADMIN_KEY)
        alice = await accounts.create_user(session, "alice")
        alice_key = (await accounts.issue_key(session, alice)).key
        bob = await accounts.create_user(session, "bob")
        bob_key = (await accounts.issue_key(session, bob)).key
    return {"export": export, "root": root, "alice": alice_key, "bob": bob_key, "admin": ADMIN_KEY}


@pytest.fixture(scope="session")
async def explored(seeded, db_sessionmaker) -> dict[str, Any]:
    """The seeded source with a feature map and evaluations, as the trainer stores them."""
    await store_feature_map_and_evals(db_sessionmaker, MODEL, SOURCE, N_FEATURES)
    return seeded


def make_settings(database_url: str | None, tmp: Path, **overrides: Any):
    from interpedia_webapi.settings import WebapiSettings

    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": tmp,
        "rate_limit_per_minute": 6000,
        "rate_limit_burst": 1000,
    }
    values.update(overrides)
    return WebapiSettings(**values)


@pytest.fixture
async def api(seeded, db_sessionmaker, tmp_path) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The app in process on the test's sessionmaker, with fake upstream services."""
    from interpedia_webapi.app import create_app
    from interpedia_webapi.deps import get_upstreams

    app = create_app(make_settings(None, tmp_path, import_dir=tmp_path / "imports"))
    app.state.sessionmaker = db_sessionmaker
    app.state.ready = True
    fakes = FakeUpstreams()
    app.dependency_overrides[get_upstreams] = lambda: fakes
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client, fakes
    for task in app.state.import_tasks.values():
        if not task.done():
            await task


class LiveServer:
    """Uvicorn in a thread, with its own event loop (and so its own database engine)."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        from interpedia_testing.net import wait_for_http

        self.thread.start()
        wait_for_http(self.url + "/health", timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def live_app(database_url: str, tmp: Path, **overrides: Any) -> tuple[Any, FakeUpstreams]:
    from interpedia_webapi.app import create_app
    from interpedia_webapi.deps import get_upstreams

    app = create_app(
        make_settings(
            database_url,
            tmp,
            admin_bootstrap_key=ADMIN_KEY,
            import_dir=tmp / "imports",
            **overrides,
        )
    )
    fakes = FakeUpstreams()
    app.dependency_overrides[get_upstreams] = lambda: fakes
    return app, fakes


@pytest.fixture(scope="session")
def live_server(explored, database_url, tmp_path_factory) -> Iterator[tuple[LiveServer, Any]]:
    """One real server for the session (browser and client tests), on the seeded source
    with its feature map and evaluations (set up here: the browser's event loop would
    refuse an async fixture later)."""
    seeded = explored
    from interpedia_testing.net import free_port

    tmp = tmp_path_factory.mktemp("live")
    app, fakes = live_app(database_url, tmp, import_roots=[str(seeded["root"])])
    with LiveServer(app, free_port()) as server:
        yield server, fakes
