"""DFA on a real attention SAE: the trainer's `interpedia train` fits a small TopK SAE on
`blocks.3.attn.hook_z` of the packaged SmolLM2-135M (a subprocess: an app never imports
another), the inference service loads it, and every endpoint where Neuronpedia returns
`dfa_values` / `dfa_max_value` / `dfa_target_index` (activation/single, single-batch, all,
all-batch) must return them equal to a brute-force computation.

The brute force does not use the bridge's hooks the service reads: it recomputes layer 3's
attention from the plain Hugging Face module's own projections (RoPE, causal softmax,
grouped-query heads), checks that this reproduces the input of `o_proj` (so the pattern and
values are the model's), and then sums, per source position s, the value vector each head
moves from s to the target, weighted by its attention, projected on the feature's encoder
column.
"""

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from fastapi import FastAPI
from safetensors.torch import load_file

from interpedia_inference.app import create_app
from interpedia_inference.settings import InferenceSettings

from ..conftest import running

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m"
LAYER = 3
HOOK = f"blocks.{LAYER}.attn.hook_z"
SOURCE_SET = "att-dfa"
SOURCE = f"{LAYER}-{SOURCE_SET}"
ROOT = Path(__file__).resolve().parents[4]
PROMPTS = [
    "When Mary and John went to the store, John gave a drink to",
    "The Congress shall have power to lay and collect taxes, duties, imposts and excises.",
]
TOLERANCE = 1e-3  # float32 sums over 576 terms, in two different orders


@pytest.fixture(scope="module")
def trained_sae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TopK SAE trained by the trainer's CLI on hook_z activations of the packaged model."""
    out = tmp_path_factory.mktemp("hook-z-sae") / "sae"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [
        str(Path(sys.executable).parent / "interpedia"),
        "train",
        f"--out={out}",
        f"--hook={HOOK}",
        "--architecture=topk",
        "--d-sae=1152",
        "--k=16",
        "--batch-size=256",
        "--total-tokens=4096",
        "--context-size=64",
        "--max-contexts=96",
        "--lr=0.001",
        f"--corpus={ROOT / '.cache' / 'corpora' / 'sotu'}",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
async def served(trained_sae: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = InferenceSettings(
        model_id=MODEL,
        sae_sources=[str(trained_sae)],
        sae_source_set=SOURCE_SET,
        device="cpu",
        token_limit=128,
    )
    app = create_app(settings)
    async with running(app, load_seconds=300) as client:
        yield app, client


class Brute:
    """Layer 3's attention of one prompt, recomputed from the plain HF module."""

    def __init__(self, hf_model: Any, ids: list[int], sae_dir: Path) -> None:
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        attn = hf_model.model.layers[LAYER].self_attn
        seen: dict[str, Any] = {}

        def take_input(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            seen["x"] = kwargs.get("hidden_states", args[0] if args else None)
            seen["rope"] = kwargs["position_embeddings"]

        def take_z(module: Any, args: tuple[Any, ...]) -> None:
            seen["z"] = args[0]

        handles = [
            attn.register_forward_pre_hook(take_input, with_kwargs=True),
            attn.o_proj.register_forward_pre_hook(take_z),
        ]
        try:
            with torch.no_grad():
                hf_model(torch.tensor([ids]), use_cache=False)
        finally:
            for handle in handles:
                handle.remove()
        config = hf_model.config
        n_heads, n_kv = config.num_attention_heads, config.num_key_value_heads
        d_head = config.hidden_size // n_heads
        x = seen["x"][0]  # [seq, d_model]
        seq = x.shape[0]
        with torch.no_grad():
            q = attn.q_proj(x).view(seq, n_heads, d_head).transpose(0, 1)  # [h, seq, d_head]
            k = attn.k_proj(x).view(seq, n_kv, d_head).transpose(0, 1)  # [kv, seq, d_head]
            v = attn.v_proj(x).view(seq, n_kv, d_head)  # [seq, kv, d_head]
            cos, sin = seen["rope"]
            q, k = apply_rotary_pos_emb(q[None], k[None], cos, sin)
            k = k[0].repeat_interleave(n_heads // n_kv, dim=0)  # [h, seq, d_head]
            scores = q[0] @ k.transpose(-1, -2) / d_head**0.5  # [h, q, k]
            causal = torch.ones(seq, seq, dtype=torch.bool).tril()
            self.pattern = scores.masked_fill(~causal, -torch.inf).softmax(-1)  # [h, q, k]
        self.values = v.repeat_interleave(n_heads // n_kv, dim=1)  # [seq, h, d_head]
        self.z = seen["z"][0]  # [seq, h * d_head]: what o_proj reads
        self.n_heads, self.d_head = n_heads, d_head
        weights = load_file(str(sae_dir / "sae_weights.safetensors"))
        self.w_enc, self.b_enc, self.b_dec = weights["W_enc"], weights["b_enc"], weights["b_dec"]

    def recomputed_z(self) -> torch.Tensor:
        """[seq, h * d_head]: the pattern times the values, heads concatenated."""
        z = torch.einsum("hqk,khd->qhd", self.pattern, self.values)
        return z.reshape(z.shape[0], -1)

    def dfa(self, feature: int, target: int) -> list[float]:
        """Per source position: the vector attention moves from it to `target` (each head's
        value scaled by its attention weight, heads concatenated), dotted with the encoder
        column. Positions after the target get exactly zero attention."""
        column = self.w_enc[:, feature]
        out = []
        for s in range(self.values.shape[0]):
            moved = self.pattern[:, target, s, None] * self.values[s]  # [h, d_head]
            out.append(float(moved.reshape(-1) @ column))
        return out

    def pre_activation(self, feature: int, target: int) -> float:
        return float((self.z[target] - self.b_dec) @ self.w_enc[:, feature] + self.b_enc[feature])


def _brute(app: FastAPI, prompt: str, sae_dir: Path) -> tuple[Brute, list[int]]:
    engine = app.state.engine
    ids = engine.tokenize(prompt)
    return Brute(engine.model.hf_model, ids, sae_dir), ids


def _check(fields: dict[str, Any], brute: Brute, feature: int, n_tokens: int) -> None:
    """One response's DFA fields against the brute force (either dialect's names)."""

    def get(snake: str) -> Any:
        camel = snake.split("_")[0] + "".join(w.title() for w in snake.split("_")[1:])
        return fields[snake] if snake in fields else fields[camel]

    target = get("dfa_target_index")
    assert target == get("max_value_index")
    dfa = get("dfa_values")
    assert len(dfa) == n_tokens
    expected = brute.dfa(feature, target)
    assert dfa == pytest.approx(expected, abs=TOLERANCE)
    assert all(v == 0 for v in dfa[target + 1 :])  # causal
    assert get("dfa_max_value") == pytest.approx(max(expected), abs=TOLERANCE)
    # The parts add up to the feature's input: max_value = relu(Σ dfa − b_dec·w + b_enc).
    bias = float(brute.b_enc[feature] - brute.b_dec @ brute.w_enc[:, feature])
    assert get("max_value") == pytest.approx(max(0.0, sum(dfa) + bias), abs=TOLERANCE)


async def test_brute_force_reproduces_the_models_attention(
    served: tuple[FastAPI, httpx.AsyncClient], trained_sae: Path
) -> None:
    app, _ = served
    brute, _ = _brute(app, PROMPTS[0], trained_sae)
    assert torch.allclose(brute.recomputed_z(), brute.z, atol=1e-4)
    assert torch.allclose(brute.pattern.sum(-1), torch.ones(brute.pattern.shape[:2]), atol=1e-5)


async def test_single_and_single_batch_dfa_equal_brute_force(
    served: tuple[FastAPI, httpx.AsyncClient], trained_sae: Path
) -> None:
    app, client = served
    brutes = [_brute(app, p, trained_sae) for p in PROMPTS]
    # The feature that fires hardest on the first prompt (not at BOS, an attention sink).
    brute, ids = brutes[0]
    pre = (brute.z[1:] - brute.b_dec) @ brute.w_enc + brute.b_enc  # [seq - 1, d_sae]
    feature = int(pre.max(0).values.argmax())

    for dialect in ("snake", "camel"):
        r = await client.post(
            "/v1/activation/single",
            json={"prompt": PROMPTS[0], "model": MODEL, "source": SOURCE, "index": feature},
            headers={"X-Wire-Dialect": dialect},
        )
        assert r.status_code == 200, r.text
        activation = r.json()["activation"]
        assert activation["maxValue" if dialect == "camel" else "max_value"] > 0
        _check(activation, brute, feature, len(ids))

    # Two prompts of different lengths share one right-padded forward.
    r = await client.post(
        "/v1/activation/single-batch",
        json={"prompts": PROMPTS, "model": MODEL, "source": SOURCE, "index": feature},
    )
    assert r.status_code == 200, r.text
    for result, (b, prompt_ids) in zip(r.json()["results"], brutes, strict=True):
        _check(result["activation"], b, feature, len(prompt_ids))


async def test_all_and_all_batch_dfa_equal_brute_force(
    served: tuple[FastAPI, httpx.AsyncClient], trained_sae: Path
) -> None:
    app, client = served
    brutes = [_brute(app, p, trained_sae) for p in PROMPTS]
    body = {"model": MODEL, "source_set": SOURCE_SET, "num_results": 8, "ignore_bos": True}
    r = await client.post("/v1/activation/all", json={**body, "prompt": PROMPTS[0]})
    assert r.status_code == 200, r.text
    features = r.json()["activations"]
    assert len(features) == 8
    for feature in features:
        assert feature["source"] == SOURCE
        _check(feature, brutes[0][0], feature["index"], len(brutes[0][1]))

    r = await client.post("/v1/activation/all-batch", json={**body, "prompts": PROMPTS})
    assert r.status_code == 200, r.text
    for result, (b, prompt_ids) in zip(r.json()["results"], brutes, strict=True):
        assert result["activations"]
        for feature in result["activations"]:
            _check(feature, b, feature["index"], len(prompt_ids))


async def test_topk_by_token_carries_no_dfa(served: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """As in Neuronpedia: DFA belongs to the per-feature endpoints only."""
    _, client = served
    r = await client.post(
        "/v1/activation/topk-by-token",
        json={"prompt": PROMPTS[0], "model": MODEL, "source": SOURCE, "top_k": 3},
    )
    assert r.status_code == 200, r.text
    assert "dfa_values" not in r.text
