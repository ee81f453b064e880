"""SAEs (and raw MLP neurons) as named sources, loaded with SAELens and kept in an LRU cache.

A source is named like Neuronpedia: `{layer}-{source_set}` (`6-res-demo`) inside the source
set `res-demo`. `SaeRegistry` knows every configured source cheaply (its hook and layer come
from `cfg.json` without loading weights) and keeps at most `max_loaded_saes` loaded; the
least recently used one leaves first. The `neurons` pseudo-source set exposes the raw MLP
neurons of any layer (`{layer}-neurons`, identity encoder on `blocks.{layer}.mlp.hook_post`),
created on demand.
"""

import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from interpedia_core.errors import ConfigurationError, InvalidInput, NotFound, Unprocessable
from interpedia_runtime.models import LoadedModel, layer_of_hook

logger = logging.getLogger(__name__)

NEURONS_SOURCE_SET = "neurons"


@dataclass(frozen=True)
class SaeSpec:
    """Where a source comes from; cheap to hold for every configured source."""

    source_id: str
    source_set: str
    hook_name: str
    layer: int
    path: str | None = None  # a local SAELens folder
    hook_name_out: str | None = None  # where a transcoder's features write (SAELens metadata)
    release: str | None = None  # or a SAELens release + sae_id (online)
    sae_id: str | None = None
    neurons: bool = False


class NeuronSource(torch.nn.Module):
    """Raw MLP neurons as an SAE: the encoder is the identity, each neuron its own feature."""

    def __init__(self, d_mlp: int, device: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.d_in = d_mlp
        self.d_sae = d_mlp
        self._device = device
        self._dtype = dtype

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @property
    def W_dec(self) -> torch.Tensor:
        """[d_sae, d_in]: neuron i's direction in its own hook space is the unit vector e_i."""
        return torch.eye(self.d_in, device=self._device, dtype=self._dtype)


@dataclass
class LoadedSae:
    """A source ready to encode: its SAELens SAE (or a `NeuronSource`) and where it reads."""

    spec: SaeSpec
    sae: Any  # sae_lens.SAE | NeuronSource
    d_in: int
    d_sae: int

    @property
    def source_id(self) -> str:
        return self.spec.source_id

    @property
    def hook_name(self) -> str:
        return self.spec.hook_name

    @property
    def layer(self) -> int:
        return self.spec.layer

    @property
    def steer_hook(self) -> str:
        """Where a feature's decoder row lives, so where steering adds it: an SAE
        reconstructs the hook it reads, a transcoder writes its output hook (the MLP's
        output for ours), not the hook it reads."""
        if self.spec.hook_name_out:
            return self.spec.hook_name_out
        from sae_lens import Transcoder

        if isinstance(self.sae, Transcoder):
            raise Unprocessable(
                f"transcoder source {self.source_id} names no hook_name_out in its config: "
                "cannot tell where its features write"
            )
        return self.spec.hook_name

    @torch.no_grad()
    def encode(self, acts: torch.Tensor) -> torch.Tensor:
        """[..., d_in] → [..., d_sae] feature activations."""
        sae_dtype = getattr(self.sae, "dtype", acts.dtype)
        return self.sae.encode(acts.to(sae_dtype)).float()

    def decoder_vector(self, index: int) -> torch.Tensor:
        """[d_in]: feature `index`'s decoder direction in the hook's space."""
        self.check_index(index)
        if isinstance(self.sae, NeuronSource):
            vec = torch.zeros(self.d_in, dtype=self.sae._dtype, device=self.sae._device)
            vec[index] = 1.0
            return vec
        return self.sae.W_dec[index].detach()

    def encoder_vector(self, index: int) -> torch.Tensor:
        """[d_in]: the direction feature `index` reads (its W_enc column), for attributions
        that split its input linearly (DFA)."""
        self.check_index(index)
        if isinstance(self.sae, NeuronSource):
            return self.decoder_vector(index)
        return self.sae.W_enc[:, index].detach().float()

    @property
    def W_dec(self) -> torch.Tensor:
        return self.sae.W_dec.detach()

    def check_index(self, index: int) -> None:
        if not 0 <= index < self.d_sae:
            raise NotFound(
                f"feature {index} is outside source {self.source_id} (0..{self.d_sae - 1})"
            )


def _hook_and_layer(cfg: dict[str, Any], where: str) -> tuple[str, int]:
    """A SAELens config's hook and the block it reads (`hook_layer` when the name has none)."""
    metadata = cfg.get("metadata") or {}
    hook_name = metadata.get("hook_name") or cfg.get("hook_name")
    if not hook_name:
        raise ConfigurationError(f"{where} names no hook_name")
    layer = layer_of_hook(hook_name)
    if layer is None:  # hook_embed and the like: before the first block
        layer = int(metadata.get("hook_layer") or cfg.get("hook_layer") or 0)
    return hook_name, layer


def _hook_out(cfg: dict[str, Any]) -> str | None:
    """A SAELens transcoder config's output hook (None for an SAE)."""
    return (cfg.get("metadata") or {}).get("hook_name_out") or cfg.get("hook_name_out")


def read_folder_spec(path: str | Path, source_set: str) -> SaeSpec:
    """A SAELens folder's spec from its `cfg.json`, without loading weights."""
    folder = Path(path)
    cfg_path = folder / "cfg.json"
    if not cfg_path.is_file():
        raise ConfigurationError(f"{folder} is not a SAELens folder (no cfg.json)")
    cfg = json.loads(cfg_path.read_text())
    hook_name, layer = _hook_and_layer(cfg, str(cfg_path))
    return SaeSpec(
        source_id=f"{layer}-{source_set}",
        source_set=source_set,
        hook_name=hook_name,
        layer=layer,
        path=str(folder.resolve()),
        hook_name_out=_hook_out(cfg),
    )


def parse_source(entry: str, source_set: str) -> SaeSpec:
    """One configured source: a SAELens folder path, or `release:sae_id`."""
    if Path(entry).is_dir():
        return read_folder_spec(entry, source_set)
    if ":" in entry:
        release, sae_id = entry.split(":", 1)
        return _release_spec(release, sae_id, source_set)
    raise ConfigurationError(f"SAE source {entry!r} is neither a folder nor release:sae_id")


def _release_spec(release: str, sae_id: str, source_set: str) -> SaeSpec:
    """A SAELens release entry's spec from its config alone (no weights are read).

    `release` is a release of SAELens' directory or, as SAELens allows, a Hugging Face repo
    id whose folders are SAELens SAEs. The config says the hook, hence the layer, whatever
    the SAE id looks like (`layer_5/width_16k/canonical`); SAELens reads it from the Hugging
    Face cache, so an offline machine resolves whatever is cached. The source id is
    Neuronpedia's when the release names one, else `{layer}-{source_set}`.
    """
    from huggingface_hub.errors import HfHubHTTPError
    from sae_lens.loading.pretrained_sae_loaders import load_sae_config_from_huggingface
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    entry = get_pretrained_saes_directory().get(release)
    if entry is None and "/" not in release:
        raise ConfigurationError(
            f"unknown SAELens release {release!r}: neither in SAELens' directory "
            "nor a Hugging Face repo id"
        )
    if entry is not None and sae_id not in entry.saes_map:
        raise ConfigurationError(f"release {release!r} has no SAE {sae_id!r}")
    try:
        cfg = load_sae_config_from_huggingface(release, sae_id)
    except (OSError, ValueError, KeyError, HfHubHTTPError) as exc:
        raise ConfigurationError(
            f"cannot read the config of SAE {release}:{sae_id} ({type(exc).__name__}); "
            "offline, it must be in the Hugging Face cache"
        ) from None
    hook_name, layer = _hook_and_layer(cfg, f"{release}:{sae_id}")
    metadata = cfg.get("metadata") or {}
    neuronpedia_id = metadata.get("neuronpedia_id") or cfg.get("neuronpedia_id")
    if neuronpedia_id and "/" in neuronpedia_id:
        source_id = neuronpedia_id.split("/", 1)[1]
    else:
        source_id = f"{layer}-{source_set}"
    return SaeSpec(
        source_id=source_id,
        source_set=source_set,
        hook_name=hook_name,
        layer=layer,
        release=release,
        sae_id=sae_id,
        hook_name_out=_hook_out(cfg),
    )


def _origin(spec: SaeSpec) -> str:
    return spec.path or f"{spec.release}:{spec.sae_id}"


class SaeRegistry:
    """Every configured source by id, and an LRU cache of the loaded ones."""

    def __init__(self, model: LoadedModel, max_loaded_saes: int = 8) -> None:
        self.model = model
        self.max_loaded_saes = max(1, max_loaded_saes)
        self.specs: dict[str, SaeSpec] = {}
        self._loaded: OrderedDict[str, LoadedSae] = OrderedDict()
        self._lock = threading.Lock()  # guards the cache, never held during a load
        self._loading: dict[str, threading.Lock] = {}  # one per source being loaded

    # -- configuration ------------------------------------------------------------
    def add(self, spec: SaeSpec) -> SaeSpec:
        if spec.source_id in self.specs:
            raise ConfigurationError(
                f"two SAE sources are both named {spec.source_id} ({_origin(spec)} and "
                f"{_origin(self.specs[spec.source_id])}): one source set holds one SAE per layer"
            )
        if not spec.neurons and not 0 <= spec.layer < self.model.n_layers:
            raise ConfigurationError(
                f"source {spec.source_id} reads layer {spec.layer}; "
                f"model {self.model.model_id} has {self.model.n_layers} layers"
            )
        self.specs[spec.source_id] = spec
        return spec

    def add_source(self, entry: str, source_set: str) -> SaeSpec:
        return self.add(parse_source(entry, source_set))

    def source_sets(self) -> dict[str, list[str]]:
        sets: dict[str, list[str]] = {}
        for spec in self.specs.values():
            sets.setdefault(spec.source_set, []).append(spec.source_id)
        return sets

    def sources_in_set(self, source_set: str) -> list[str]:
        if source_set == NEURONS_SOURCE_SET:
            return [f"{layer}-{NEURONS_SOURCE_SET}" for layer in range(self.model.n_layers)]
        ids = [s.source_id for s in self.specs.values() if s.source_set == source_set]
        if not ids:
            raise NotFound(f"unknown source set {source_set!r}")
        return sorted(ids, key=lambda i: self.spec(i).layer)

    def spec(self, source_id: str) -> SaeSpec:
        if source_id in self.specs:
            return self.specs[source_id]
        layer_str, _, set_name = source_id.partition("-")
        if set_name == NEURONS_SOURCE_SET and layer_str.isdigit():
            layer = int(layer_str)
            if layer < self.model.n_layers:
                return SaeSpec(
                    source_id=source_id,
                    source_set=NEURONS_SOURCE_SET,
                    hook_name=f"blocks.{layer}.mlp.hook_post",
                    layer=layer,
                    neurons=True,
                )
        raise NotFound(f"unknown source {source_id!r}")

    # -- loading ------------------------------------------------------------------
    def loaded(self, source_id: str) -> LoadedSae | None:
        """The source if it is loaded (marking it recently used), else None; never loads."""
        self.spec(source_id)  # NotFound for an unknown source
        with self._lock:
            if source_id in self._loaded:
                self._loaded.move_to_end(source_id)
                return self._loaded[source_id]
        return None

    def get(self, source_id: str) -> LoadedSae:
        """The loaded source, loading it (and evicting the least recently used) if needed.

        Slow on a miss (reads weights): async callers run it in a thread. Concurrent
        misses of one source load it once (the others wait for that load); the registry
        lock is held only to read and update the cache, so hits on other sources never
        wait for a load.
        """
        spec = self.spec(source_id)
        if (hit := self.loaded(source_id)) is not None:
            return hit
        with self._lock:
            loading = self._loading.setdefault(source_id, threading.Lock())
        with loading:
            if (hit := self.loaded(source_id)) is not None:  # loaded while we waited
                return hit
            loaded = self._load(spec)
            with self._lock:
                self._loaded[source_id] = loaded
                self._loading.pop(source_id, None)
                while len(self._loaded) > self.max_loaded_saes:
                    evicted, _ = self._loaded.popitem(last=False)
                    logger.info(
                        "evicted SAE %s (max_loaded_saes=%d)", evicted, self.max_loaded_saes
                    )
            return loaded

    def loaded_ids(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    def load_all(self) -> None:
        """Warm the cache with the configured sources (up to the cache size)."""
        for source_id in list(self.specs)[: self.max_loaded_saes]:
            self.get(source_id)

    def _load(self, spec: SaeSpec) -> LoadedSae:
        model = self.model
        if spec.neurons:
            neurons = NeuronSource(model.d_mlp, model.device, model.dtype)
            return LoadedSae(spec=spec, sae=neurons, d_in=model.d_mlp, d_sae=model.d_mlp)
        from sae_lens import SAE

        if spec.path is not None:
            sae = SAE.load_from_disk(spec.path, device=model.device)
        else:
            sae = SAE.from_pretrained(spec.release, spec.sae_id, device=model.device)
        sae.eval()
        hook_name = sae.cfg.metadata.hook_name or spec.hook_name
        hook_name_out = sae.cfg.metadata.hook_name_out or spec.hook_name_out
        if (hook_name, hook_name_out) != (spec.hook_name, spec.hook_name_out):
            spec = replace(spec, hook_name=hook_name, hook_name_out=hook_name_out)
            with self._lock:
                self.specs[spec.source_id] = spec
        for hook in (hook_name, hook_name_out):
            if hook is not None and hook not in model.bridge.hook_dict:
                raise ConfigurationError(
                    f"source {spec.source_id} uses hook {hook!r}, "
                    f"which model {model.model_id} does not have"
                )
        logger.info(
            "loaded SAE %s (%s, d_in=%d, d_sae=%d)",
            spec.source_id,
            sae.cfg.architecture(),
            sae.cfg.d_in,
            sae.cfg.d_sae,
        )
        return LoadedSae(spec=spec, sae=sae, d_in=int(sae.cfg.d_in), d_sae=int(sae.cfg.d_sae))


@torch.no_grad()
def encode_tokens(
    model: LoadedModel,
    saes: list[LoadedSae],
    tokens: torch.Tensor,  # [batch, seq]
    attention_mask: torch.Tensor | None = None,  # [batch, seq]
) -> dict[str, torch.Tensor]:
    """Feature activations per source, [batch, seq, d_sae], from one forward that stops
    after the deepest block any of the SAEs reads."""
    hooks = sorted({s.hook_name for s in saes})
    acts = model.run_hooks(tokens, hooks, attention_mask=attention_mask)
    out: dict[str, torch.Tensor] = {}
    for sae in saes:
        hook_acts = acts[sae.hook_name]
        if hook_acts.shape[-1] != sae.d_in:
            raise InvalidInput(
                f"source {sae.source_id} expects d_in={sae.d_in} at {sae.hook_name}, "
                f"the model gives {hook_acts.shape[-1]}"
            )
        out[sae.source_id] = sae.encode(hook_acts)
    return out


def load_sae(source: str | Path, device: str = "cpu", dtype: str | None = None) -> Any:
    """Load one SAELens SAE from a local folder or `release:sae_id` (the latter online)."""
    from sae_lens import SAE

    if Path(source).is_dir():
        return SAE.load_from_disk(str(source), device=device, dtype=dtype)
    source = str(source)
    if ":" not in source:
        raise NotFound(f"{source!r} is neither a SAELens folder nor release:sae_id")
    release, sae_id = source.split(":", 1)
    return SAE.from_pretrained(release, sae_id, device=device, dtype=dtype or "float32")


def save_random_sae(
    path: str | Path,
    *,
    d_in: int,
    d_sae: int,
    hook_name: str,
    architecture: str = "standard",
    model_name: str = "smollm2-135m",
    k: int = 32,
    seed: int = 0,
) -> Path:
    """Write a randomly initialised SAELens SAE folder (for tests, benchmarks and demos).

    Decoder rows are unit norm and the encoder is their transpose, so each feature fires on
    inputs aligned with its own direction, like a trained SAE's features do.
    """
    from sae_lens import StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(seed)
    metadata = SAEMetadata(model_name=model_name, hook_name=hook_name, prepend_bos=True)
    if architecture == "standard":
        sae: Any = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, metadata=metadata))
    elif architecture == "topk":
        sae = TopKSAE(TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k, metadata=metadata))
    else:
        raise ConfigurationError(f"save_random_sae supports standard and topk, not {architecture}")
    with torch.no_grad():
        w_dec = torch.randn(d_sae, d_in)
        w_dec /= w_dec.norm(dim=-1, keepdim=True)
        sae.W_dec.copy_(w_dec)
        sae.W_enc.copy_(w_dec.T)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    sae.save_model(folder)
    return folder
