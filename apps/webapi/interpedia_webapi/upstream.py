"""The inference, autointerp and graph services, through their generated typed clients.

`Upstreams` builds one client per service URL (lazily; closed in the lifespan) and knows
which models the configured inference services really serve. Callers send the
services' own request models and read their response models; `upstream_errors`
turns what a service answered into this app's errors, faithfully:

- 400, 404, 409, 422 and 429 pass on with the service's status and message: the
  caller's request was wrong, not this server;
- 401 and 403 mean this server holds the wrong secret for the service: a
  misconfiguration, so 502 with a message that says which setting to fix;
- other statuses (5xx, a service still loading), connection failures, timeouts
  and answers of the wrong shape are 502.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pydantic
from sqlalchemy.ext.asyncio import AsyncSession

from interpedia_clients import ServiceError
from interpedia_clients.autointerp import AsyncAutointerpClient
from interpedia_clients.base import AsyncServiceClient
from interpedia_clients.graph import AsyncGraphClient
from interpedia_clients.inference import AsyncInferenceClient
from interpedia_core.errors import (
    Conflict,
    InterpediaError,
    InvalidInput,
    NotFound,
    RateLimited,
    Unprocessable,
    UpstreamError,
)

logger = logging.getLogger(__name__)

# A service's 4xx that describe the caller's request: passed on with the service's message.
PASSED_ON: dict[int, type[InterpediaError]] = {
    400: InvalidInput,
    404: NotFound,
    409: Conflict,
    422: Unprocessable,
    429: RateLimited,
}
SECRET_SETTING = {
    "inference": "INTERPEDIA_WEBAPI_INFERENCE_SECRET",
    "autointerp": "INTERPEDIA_WEBAPI_AUTOINTERP_SECRET",
    "graph": "INTERPEDIA_WEBAPI_GRAPH_SECRET",
}
# Generation can take minutes; a service that does not accept the connection is down.
TIMEOUT = httpx.Timeout(300.0, connect=5.0)
CAPABILITIES_TTL_S = 30.0


def upstream_error(exc: ServiceError) -> InterpediaError:
    """This app's error for a service's error answer."""
    if exc.status_code in PASSED_ON:
        return PASSED_ON[exc.status_code](exc.detail)
    if exc.status_code in (401, 403):
        setting = SECRET_SETTING.get(exc.service, "the service's secret")
        return UpstreamError(
            f"the {exc.service} service refused this server's secret ({exc.status_code}): "
            f"set {setting} to the service's SECRET"
        )
    return UpstreamError(f"the {exc.service} service failed ({exc.status_code}): {exc.detail}")


@asynccontextmanager
async def upstream_errors(
    client: AsyncServiceClient, session: AsyncSession | None = None
) -> AsyncIterator[None]:
    """Calls to `client` inside raise this app's errors (see the module docstring).

    With the request's `session`, its transaction ends first (only reads come before a
    call), so the request holds no pooled database connection while the service works:
    a few slow generations must not leave cheap reads waiting for the pool.
    """
    if session is not None:
        await session.commit()
    try:
        yield
    except ServiceError as exc:
        if exc.status_code >= 500:
            logger.warning("%s answered %d: %s", exc.service, exc.status_code, exc.detail)
        raise upstream_error(exc) from None
    except httpx.HTTPError as exc:  # refused, reset, timed out
        logger.warning("%s unreachable: %r", client.service, exc)
        raise UpstreamError(
            f"cannot reach the {client.service} service ({type(exc).__name__})"
        ) from None
    except pydantic.ValidationError:
        logger.warning("%s answered in an unexpected shape", client.service, exc_info=True)
        raise UpstreamError(
            f"the {client.service} service answered in an unexpected shape"
        ) from None


@dataclass
class _Capabilities:
    expires: float
    model_names: frozenset[str]  # empty when the service could not be asked


class Upstreams:
    """One client per service URL, and which models the inference services serve."""

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
        self._inference: dict[str, AsyncInferenceClient] = {}
        self._autointerp: AsyncAutointerpClient | None = None
        self._graph: AsyncGraphClient | None = None
        self._capabilities: dict[str, _Capabilities] = {}

    def _inference_url(self, model_id: str) -> str | None:
        return self._inference_urls.get(model_id) or self._default_inference

    def inference(self, model_id: str) -> AsyncInferenceClient:
        url = self._inference_url(model_id)
        if not url:
            raise InvalidInput(f"no inference service is configured for model {model_id}")
        return self._inference_at(url)

    def _inference_at(self, url: str) -> AsyncInferenceClient:
        if url not in self._inference:
            self._inference[url] = AsyncInferenceClient(
                url, secret=self._inference_secret, timeout=TIMEOUT
            )
        return self._inference[url]

    def autointerp(self) -> AsyncAutointerpClient:
        if not self._autointerp_url:
            raise InvalidInput("no autointerp service is configured")
        if self._autointerp is None:
            self._autointerp = AsyncAutointerpClient(
                self._autointerp_url, secret=self._autointerp_secret, timeout=TIMEOUT
            )
        return self._autointerp

    def graph(self) -> AsyncGraphClient:
        if not self._graph_url:
            raise InvalidInput("no graph service is configured (INTERPEDIA_WEBAPI_GRAPH_URL)")
        if self._graph is None:
            self._graph = AsyncGraphClient(
                self._graph_url, secret=self._graph_secret, timeout=TIMEOUT
            )
        return self._graph

    @property
    def has_autointerp(self) -> bool:
        return bool(self._autointerp_url)

    async def served(self, model_ids: list[str]) -> list[str]:
        """The models in `model_ids` that an inference service configured for them serves.

        Each service is asked (`GET /v1/capabilities`) at most every 30 s; one that is down
        or still loading serves nothing until it answers.
        """
        urls = {m: url for m in model_ids if (url := self._inference_url(m))}
        distinct = sorted(set(urls.values()))
        names = await asyncio.gather(*(self._model_names(url) for url in distinct))
        by_url = dict(zip(distinct, names, strict=True))
        return [m for m in model_ids if m in urls and m in by_url[urls[m]]]

    async def _model_names(self, url: str) -> frozenset[str]:
        cached = self._capabilities.get(url)
        if cached is not None and cached.expires > time.monotonic():
            return cached.model_names
        client = self._inference_at(url)
        try:
            async with upstream_errors(client):
                capabilities = await client.capabilities()
            names = frozenset(capabilities.model_names)
        except InterpediaError as exc:
            logger.info("inference at %s serves nothing for now: %s", url, exc.message)
            names = frozenset()
        self._capabilities[url] = _Capabilities(time.monotonic() + CAPABILITIES_TTL_S, names)
        return names

    async def aclose(self) -> None:
        clients: list[AsyncServiceClient] = [*self._inference.values()]
        if self._autointerp is not None:
            clients.append(self._autointerp)
        if self._graph is not None:
            clients.append(self._graph)
        for client in clients:
            await client.aclose()
        self._inference.clear()
        self._autointerp = None
        self._graph = None
