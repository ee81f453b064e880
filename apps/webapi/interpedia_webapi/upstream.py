"""The inference and autointerp services, as this app uses them.

The generated clients (`interpedia_clients.inference`/`.autointerp`) are used when
installed; the Protocols below name the few methods this app calls, so tests can
hand in a small fake (see `deps.get_upstreams`). Requests go out as plain dicts
with the services' wire names; answers come back as dicts, whatever the client
returns, so the rest of the app does not depend on generated class names.
"""

import importlib
import logging
from typing import Any, Protocol

from pydantic import BaseModel

from interpedia_core.errors import InterpediaError, InvalidInput, UpstreamError

logger = logging.getLogger(__name__)


class InferenceClient(Protocol):
    async def activation_single(self, request: Any) -> Any: ...
    async def activation_all(self, request: Any) -> Any: ...
    async def activation_topk_by_token(self, request: Any) -> Any: ...
    async def activation_source(self, request: Any) -> Any: ...
    async def steer_completion(self, request: Any) -> Any: ...
    async def steer_completion_chat(self, request: Any) -> Any: ...
    async def tokenize(self, request: Any) -> Any: ...


class AutointerpClient(Protocol):
    async def explain_default(self, request: Any) -> Any: ...
    async def score_embedding(self, request: Any) -> Any: ...
    async def search_explanations(self, request: Any) -> Any: ...


def as_dict(value: Any) -> Any:
    """A client's answer as plain JSON-like data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, list):
        return [as_dict(v) for v in value]
    return value


async def call(client: Any, method: str, request: dict[str, Any]) -> Any:
    """Call one upstream operation; its 4xx become our 400, anything else a 502."""
    function = getattr(client, method, None)
    if function is None:
        raise UpstreamError(f"the {type(client).__name__} has no operation {method}")
    try:
        return as_dict(await function(request))
    except InterpediaError:
        raise
    except Exception as exc:
        status = getattr(exc, "status_code", None)
        detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
        if isinstance(status, int) and 400 <= status < 500 and status != 401:
            raise InvalidInput(f"{method}: {detail}") from None
        logger.warning("upstream %s failed: %r", method, exc)
        raise UpstreamError(f"{method} failed upstream: {detail}") from None


class Upstreams:
    """Builds one client per service URL, lazily; closed in the lifespan."""

    def __init__(
        self,
        inference_urls: dict[str, str],
        default_inference: str | None,
        inference_secret: str | None,
        autointerp_url: str | None,
        autointerp_secret: str | None,
        graph_url: str | None = None,
        graph_secret: str | None = None,
    ) -> None:
        self._inference_urls = inference_urls
        self._default_inference = default_inference
        self._inference_secret = inference_secret
        self._autointerp_url = autointerp_url
        self._autointerp_secret = autointerp_secret
        self._graph_url = graph_url
        self._graph_secret = graph_secret
        self._clients: dict[str, Any] = {}

    def _build(self, module: str, cls: str, url: str, secret: str | None) -> Any:
        key = f"{module}:{url}"
        if key not in self._clients:
            try:
                client_cls = getattr(importlib.import_module(module), cls)
            except (ImportError, AttributeError):
                raise UpstreamError(f"{module}.{cls} is not installed") from None
            self._clients[key] = client_cls(url, secret=secret)
        return self._clients[key]

    def inference(self, model_id: str) -> InferenceClient:
        url = self._inference_urls.get(model_id) or self._default_inference
        if not url:
            raise InvalidInput(f"no inference service is configured for model {model_id}")
        return self._build(
            "interpedia_clients.inference", "AsyncInferenceClient", url, self._inference_secret
        )

    def autointerp(self) -> AutointerpClient:
        if not self._autointerp_url:
            raise InvalidInput("no autointerp service is configured")
        return self._build(
            "interpedia_clients.autointerp",
            "AsyncAutointerpClient",
            self._autointerp_url,
            self._autointerp_secret,
        )

    def graph(self) -> Any:
        """The graph service's typed client (`interpedia_clients.graph.AsyncGraphClient`)."""
        if not self._graph_url:
            raise InvalidInput("no graph service is configured (INTERPEDIA_WEBAPI_GRAPH_URL)")
        return self._build(
            "interpedia_clients.graph", "AsyncGraphClient", self._graph_url, self._graph_secret
        )

    @property
    def has_autointerp(self) -> bool:
        return bool(self._autointerp_url)

    async def aclose(self) -> None:
        for client in self._clients.values():
            close = getattr(client, "aclose", None)
            if close is not None:
                await close()
        self._clients.clear()
