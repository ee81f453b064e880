"""A set the trainer trains loads unchanged with circuit-tracer, in the graph environment.

The trainer lives in the platform's environment (`.venv`), so the set is made the way a
person makes it: `interpedia train --architecture transcoder` as a process, small (two
layers, a few hundred tokens of the packaged model), then read by `load_transcoder_set`.
"""

import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from interpedia_graph.transcoder_sets import load_transcoder_set

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_set(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    interpedia = repo_root / ".venv" / "bin" / "interpedia"
    if not interpedia.exists():
        pytest.skip(f"the platform environment is not built ({interpedia} is missing)")
    out = tmp_path_factory.mktemp("trained") / "tc-trained"
    args = ["train", "--architecture", "transcoder", "--layers", "0-1", "--activation"]
    args += ["topk", "--d-sae", "64", "--k", "4", "--batch-size", "128"]
    args += ["--total-tokens", "256", "--context-size", "64", "--max-contexts", "12"]
    corpus = repo_root / ".cache" / "corpora" / "sotu"
    result = subprocess.run(
        [str(interpedia), *args, "--corpus", str(corpus), "--out", str(out)],
        env=os.environ | {"HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_circuit_tracer_loads_a_trained_set(trained_set: Path) -> None:
    loaded = load_transcoder_set(trained_set)
    assert loaded.n_layers == 2
    assert loaded.feature_input_hook == "mlp.hook_in"
    assert loaded.feature_output_hook == "mlp.hook_out"
    assert loaded.d_transcoder == 64
    layer_1 = load_file(str(trained_set / "layer_1.safetensors"))
    transcoder = loaded[1]
    x = torch.randn(5, 576)
    pre = x @ layer_1["W_enc"].T + layer_1["b_enc"]
    expected = pre * (pre > layer_1["activation_function.threshold"])
    torch.testing.assert_close(transcoder.encode(x), expected)
    torch.testing.assert_close(
        transcoder.decode(expected), expected @ layer_1["W_dec"] + layer_1["b_dec"]
    )
