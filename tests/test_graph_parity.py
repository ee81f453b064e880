"""The graph service sees the model the inference service sees: same logits (max |Δ| ≤ 1e-4).

They run in different environments: the graph service's has transformers 4.57 (circuit-
tracer's pin), the platform's 5.x. Both read the prepared packaged snapshot, which is
written so that 4.57 reads it the way 5.x does (tokenizer class, rope base 100000); a rope
base silently falling back to 10000 would move these logits by whole units. The graph
side runs in its own environment's python, through the graph service's own loader and
forward; the inference side through the platform runtime the inference service uses.
"""

import subprocess
import textwrap
from pathlib import Path

import pytest
import torch

from interpedia_core.settings import CommonSettings

pytestmark = pytest.mark.slow

PROMPTS = [
    "The capital of France is",
    "<|im_start|>user\nWrite a haiku about the sea, please.<|im_end|>\n<|im_start|>assistant\n",
]

GRAPH_SIDE = textwrap.dedent(
    """
    import sys
    import torch
    from interpedia_formats.transcoder_set import write_transcoder_set
    from interpedia_graph import prompts, steering
    from interpedia_graph.replacement import load_replacement_model, load_tokenizer

    out, folder, texts = sys.argv[1], sys.argv[2], sys.argv[3:]
    layers = [  # any transcoders: the model's own forward does not go through them
        {"W_enc": torch.randn(8, 576), "W_dec": torch.randn(8, 576), "b_enc": torch.zeros(8),
         "b_dec": torch.zeros(576)} for _ in range(30)
    ]
    write_transcoder_set(folder, layers, scan="parity", model_name="smollm2-135m")
    model = load_replacement_model("smollm2-135m", folder, "cpu")
    tokenizer = load_tokenizer("smollm2-135m")
    ids = [prompts.prompt_ids(tokenizer, text) for text in texts]
    torch.save(
        {"ids": ids, "logits": [steering.next_token_logits(model, i) for i in ids],
         "rope_theta": model.config.rope_theta},
        out,
    )
    """
)


def test_graph_and_inference_logits_agree(tmp_path: Path) -> None:
    python = CommonSettings().graph_bin / "python"
    if not python.exists():
        pytest.fail(f"no graph environment at {python.parent.parent}: run `make setup`")
    out = tmp_path / "graph.pt"
    result = subprocess.run(
        [str(python), "-c", GRAPH_SIDE, str(out), str(tmp_path / "set"), *PROMPTS],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    graph = torch.load(out)
    assert graph["rope_theta"] == 100000.0

    from interpedia_runtime.models import load_model

    inference = load_model("smollm2-135m")
    for text, ids, graph_logits in zip(PROMPTS, graph["ids"], graph["logits"], strict=True):
        # Same tokens from both tokenizers; the tracer puts a special token first if none is.
        expected = inference.tokenizer(text, add_special_tokens=False).input_ids
        bos = inference.tokenizer.bos_token_id
        assert ids.tolist() == (expected if expected[0] == bos else [bos, *expected])
        with torch.no_grad():
            logits = inference.bridge(ids.unsqueeze(0), return_type="logits")[0]
        difference = (logits.float() - graph_logits.float()).abs().max().item()
        assert difference <= 1e-4, f"max |Δlogit| {difference:.2e} on {text!r}"
        assert logits[-1].argmax() == graph_logits[-1].argmax()
