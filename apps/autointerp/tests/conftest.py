"""Fixtures of the autointerp suite: the real local embedding model (once per session),
hand-built activation examples, and a tiny OpenAI-compatible chat server on 127.0.0.1."""

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from interpedia_autointerp.embeddings import EmbedderRegistry, LocalEmbedder
from interpedia_autointerp.examples import ActivationRecord
from interpedia_testing.servers import ThreadedServer


@pytest.fixture(scope="session")
def local_embedder() -> LocalEmbedder:
    return LocalEmbedder()


def make_record(text: str, hot: dict[str, float]) -> ActivationRecord:
    """Split on spaces GPT-2 style ("Ġword"); words in `hot` get their value, others 0."""
    words = text.split(" ")
    tokens = [w if i == 0 else "Ġ" + w for i, w in enumerate(words)]
    values = [hot.get(w.strip(".,").lower(), 0.0) for w in words]
    return ActivationRecord(tokens, values)


CAT_TEXTS = [
    "My cat sleeps on the sofa all afternoon.",
    "The cat chased a mouse across the kitchen floor.",
    "She adopted a kitten from the animal shelter.",
    "Our old cat purrs whenever someone strokes her fur.",
    "A stray cat was meowing outside the door at night.",
    "The kitten played with a ball of yarn.",
    "He feeds the cat twice a day with tuna.",
    "Lions and tigers are big cats of the wild.",
]
OTHER_TEXTS = [
    "The quarterly report shows revenue grew by four percent.",
    "Parliament passed the new budget after a long debate.",
    "The train to Boston leaves at seven in the morning.",
    "Mix the flour and butter before adding the eggs.",
    "The river flooded the valley after heavy rain.",
    "Our team won the football match on Saturday.",
    "Install the package and restart the server.",
    "The painting hangs in a museum in Paris.",
]
CAT_WORDS = {"cat": 8.0, "cats": 7.0, "kitten": 9.0}


@pytest.fixture(scope="session")
def cat_records() -> list[ActivationRecord]:
    return [make_record(t, CAT_WORDS) for t in CAT_TEXTS]


@pytest.fixture(scope="session")
def other_records() -> list[ActivationRecord]:
    return [make_record(t, {}) for t in OTHER_TEXTS]


@dataclass
class FakeLLM:
    """What the fake server answers (`reply(messages) -> text`) and what it was asked."""

    url: str
    reply: Callable[[list[dict[str, Any]]], str] = lambda messages: "Explanation: cats"
    status: int = 200
    raw_body: bytes | None = None  # send this instead of a well-formed completion
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)  # each request's header


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    """An OpenAI-compatible `/v1/chat/completions` on 127.0.0.1, driven by the real SDK."""
    state = FakeLLM(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            state.requests.append(body)
            state.authorizations.append(self.headers.get("authorization", ""))
            if state.status != 200:
                payload = json.dumps({"error": {"message": "boom", "type": "server_error"}})
                self._send(state.status, payload.encode())
                return
            if state.raw_body is not None:
                self._send(200, state.raw_body)
                return
            if self.path.endswith("/embeddings"):
                # A deterministic fake: one-hot-ish vectors from the text's hash.
                dims = body.get("dimensions", 8)
                data = [
                    {
                        "object": "embedding",
                        "index": i,
                        "embedding": [float((hash(t) >> k) % 7) for k in range(dims)],
                    }
                    for i, t in enumerate(body["input"])
                ]
                payload = {"object": "list", "data": data, "model": body["model"], "usage": {}}
                self._send(200, json.dumps(payload).encode())
                return
            content = state.reply(body.get("messages", []))
            completion = {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
            self._send(200, json.dumps(completion).encode())

        def _send(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def embedders(local_embedder: LocalEmbedder) -> EmbedderRegistry:

    registry = EmbedderRegistry(local_embedder.name)
    registry.register(local_embedder)
    return registry


def _wait_ready(client: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/health").status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError("service not ready")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def wait_ready() -> Callable[..., None]:
    """Poll a client's /health until 200 (the lifespan loads models in the background)."""
    return _wait_ready


@pytest.fixture
def serve_app() -> Iterator[Callable[[Any], str]]:
    """Run ASGI apps under uvicorn on free 127.0.0.1 ports; the starter returns the URL."""
    with contextlib.ExitStack() as servers:
        yield lambda app: servers.enter_context(ThreadedServer(app)).url
