"""The model as circuit-tracer sees it: a `ReplacementModel` (nnsight backend) per transcoder set.

circuit-tracer's nnsight backend wraps the Hugging Face model itself, so it runs the
model's own code (SmolLM2's rope base included); its TransformerLens backend does not
know SmolLM2. The packaged model is read from its prepared snapshot folder, which the
main environment writes in a form transformers 4.57 reads (`interpedia_runtime.packaged`;
only that module is used here, it needs no transformers).

`ReplacementModels` keeps the last model built and rebuilds only when another
transcoder set is asked for: each build loads the model's weights again (about 10 s and
half a gigabyte for SmolLM2-135M), and a worker or server usually serves one set.
"""

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from interpedia_core.errors import ConfigurationError, NotFound
from interpedia_graph.transcoder_sets import load_transcoder_set
from interpedia_runtime import packaged
from interpedia_runtime.models import resolve_model

logger = logging.getLogger(__name__)


def model_folder(model_id: str) -> str:
    """Where the model's weights and tokenizer are read from (a folder or, online, a hub id)."""
    spec = resolve_model(model_id)
    if not spec.packaged:
        return spec.hf_id
    if not packaged.is_prepared():
        raise ConfigurationError(
            "the packaged model is not prepared: run `make setup` (or `interpedia models "
            "prepare` in the main environment) first"
        )
    return str(packaged.snapshot_dir())


def load_tokenizer(model_id: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_folder(model_id))
    except OSError as exc:
        raise NotFound(f"cannot load the tokenizer of model {model_id!r}: {exc}") from None


def load_replacement_model(model_id: str, transcoder_folder: Path, device: str) -> Any:
    """circuit-tracer's `ReplacementModel` of the model with the set's transcoders."""
    from circuit_tracer.replacement_model import ReplacementModel

    if device == "cpu":
        torch.set_flush_denormal(True)  # denormals make CPU backward passes several times slower
    transcoders = load_transcoder_set(transcoder_folder, device=device)
    return ReplacementModel.from_pretrained_and_transcoders(
        model_folder(model_id),
        transcoders,
        backend="nnsight",
        device=torch.device(device),
        dtype=torch.float32,
    )


class ReplacementModels:
    """The replacement model of one (model, transcoder set) at a time, built on demand.

    Thread-safe: the worker and the server call it from threads; a build holds the lock
    so two callers never load the weights twice.
    """

    def __init__(
        self, device: str, build: Callable[[str, Path, str], Any] = load_replacement_model
    ) -> None:
        self.device = device
        self._build = build
        self._lock = threading.Lock()
        self._key: tuple[str, str] | None = None
        self._model: Any = None

    def get(self, model_id: str, folder: Path) -> Any:
        key = (model_id, str(folder))
        with self._lock:
            if self._key != key:
                self._model = None  # free the old one before loading the next
                logger.info("loading %s with transcoders %s", model_id, folder)
                self._model = self._build(model_id, folder, self.device)
                self._key = key
            return self._model
