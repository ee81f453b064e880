"""The one door to an OpenAI-compatible chat API (explainer and judges).

Any server that speaks `/v1/chat/completions` works (OpenAI, OpenRouter, vLLM,
llama.cpp, Ollama). The `openai` SDK retries rate limits, timeouts and 5xx with
exponential backoff (`max_retries`), and is the only layer that retries; whatever
still fails becomes an `UpstreamError` (502) with a message that says what happened,
never a 500.

`OpenAIClients` keeps one SDK client (one connection pool) per API root for the
service's lifetime: requests that bring their own key (Neuronpedia's OpenRouter
key) get a view of that client with their key, not a client of their own, and
every client is closed when the service stops.
"""

import asyncio
import logging
from dataclasses import dataclass

import openai

from interpedia_core.errors import UpstreamError

logger = logging.getLogger(__name__)

OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"


@dataclass(frozen=True)
class LLMConfig:
    model: str
    base_url: str | None = None
    api_key: str | None = None
    timeout: float = 60.0
    max_retries: int = 2
    max_concurrency: int = 8


def _sdk_client(config: LLMConfig) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=config.base_url,
        # Local servers often need no key, but the SDK refuses to start without one.
        api_key=config.api_key or "no-key",
        timeout=config.timeout,
        max_retries=config.max_retries,
    )


class OpenAIClients:
    """One `openai.AsyncOpenAI` per API root, shared by every call to it; closed by `aclose`."""

    def __init__(self) -> None:
        self._clients: dict[str | None, openai.AsyncOpenAI] = {}

    def client(self, config: LLMConfig) -> openai.AsyncOpenAI:
        """The root's client, seen with `config`'s key (a view sharing its connections)."""
        client = self._clients.get(config.base_url)
        if client is None:
            client = self._clients[config.base_url] = _sdk_client(config)
        if client.api_key != (config.api_key or "no-key"):
            client = client.with_options(api_key=config.api_key or "no-key")
        return client

    def roots(self) -> list[str | None]:
        return list(self._clients)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


class LLMClient:
    """A chat model behind an OpenAI-compatible API, with bounded concurrency.

    With `clients`, it uses the shared client of its API root (closed with `clients`);
    without, it owns a client of its own, closed by `close`.
    """

    def __init__(self, config: LLMConfig, clients: OpenAIClients | None = None) -> None:
        self.config = config
        self.model = config.model
        self._owned = clients is None
        self._client = _sdk_client(config) if clients is None else clients.client(config)
        self._slots = asyncio.Semaphore(config.max_concurrency)

    async def complete(
        self, messages: list[dict[str, str]], *, max_tokens: int = 400, temperature: float = 0.0
    ) -> str:
        """The assistant's reply text; `UpstreamError` when the API fails or says nothing."""
        async with self._slots:
            try:
                response = await self._client.chat.completions.create(
                    model=self.model,
                    messages=messages,  # type: ignore[arg-type]
                    max_tokens=max_tokens,
                    temperature=temperature,
                )
            except openai.APITimeoutError:
                raise UpstreamError(
                    f"the LLM ({self.model}) did not answer within {self.config.timeout:g} s"
                ) from None
            except openai.APIConnectionError:
                raise UpstreamError(
                    f"cannot reach the LLM API at {self._client.base_url}"
                ) from None
            except openai.APIStatusError as exc:
                raise UpstreamError(
                    f"the LLM API answered {exc.status_code}: {_short(exc.message)}"
                ) from None
            except (openai.APIError, ValueError) as exc:  # malformed body (JSON errors too)
                raise UpstreamError(f"the LLM API answered nonsense: {_short(str(exc))}") from None
        try:
            # The SDK builds responses without validating them: a wrong shape shows up here.
            content = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            raise UpstreamError("the LLM API's answer is not a chat completion") from None
        if not content or not content.strip():
            raise UpstreamError("the LLM returned an empty answer")
        return content

    async def close(self) -> None:
        if self._owned:
            await self._client.close()


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
