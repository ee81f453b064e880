"""The one door to an OpenAI-compatible chat API (explainer and judges).

Any server that speaks `/v1/chat/completions` works (OpenAI, OpenRouter, vLLM,
llama.cpp, Ollama). The `openai` SDK retries rate limits, timeouts and 5xx with
exponential backoff (`max_retries`); whatever still fails becomes an
`UpstreamError` (502) with a message that says what happened, never a 500.
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


class LLMClient:
    """A chat model behind an OpenAI-compatible API, with bounded concurrency."""

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self.model = config.model
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url,
            # Local servers often need no key, but the SDK refuses to start without one.
            api_key=config.api_key or "no-key",
            timeout=config.timeout,
            max_retries=config.max_retries,
        )
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
        await self._client.close()


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
