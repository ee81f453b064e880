"""Data-parallel training with torch.distributed (gloo, CPU), launched by torchrun.

Two ranks splitting each global batch must train the same SAE as one rank on the whole
batch, for every architecture the fast steps train (AuxK revival included); a 2-rank
`interpedia train` killed mid-run must resume on one rank from its checkpoint; and a stop
requested of one rank alone must stop both at the same step, with one checkpoint.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from interpedia_trainer.cli import commands

WORKER = Path(__file__).with_name("ddp_worker.py")
ENV = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _torchrun(nproc: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
    ]


@pytest.fixture(scope="module")
def one_and_two_ranks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ddp")
    one, two = root / "one", root / "two"
    subprocess.run([sys.executable, str(WORKER), str(one)], env=ENV, check=True, timeout=600)
    subprocess.run([*_torchrun(2), str(WORKER), str(two)], env=ENV, check=True, timeout=600)
    return one, two


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / a.norm().clamp(min=1e-12))


@pytest.mark.parametrize("architecture", ["topk", "batchtopk", "matryoshka_batchtopk", "standard"])
def test_two_gloo_ranks_train_the_same_sae_as_one(one_and_two_ranks, architecture) -> None:
    one, two = (folder / architecture for folder in one_and_two_ranks)
    weights_one = load_file(one / "sae_weights.safetensors")
    weights_two = load_file(two / "sae_weights.safetensors")
    assert set(weights_one) == set(weights_two)
    for name, value in weights_one.items():
        assert _relative(value, weights_two[name]) <= 1e-5, name

    state_one = torch.load(one / "checkpoints/latest/trainer_state.pt", weights_only=False)
    state_two = torch.load(two / "checkpoints/latest/trainer_state.pt", weights_only=False)
    assert (state_one["world_size"], state_two["world_size"]) == (1, 2)
    assert state_one["n_tokens"] == state_two["n_tokens"] == 128 * 8
    assert torch.equal(state_one["act_freq"], state_two["act_freq"])  # same firings, same dead
    assert state_one["scaling_factor"] == pytest.approx(state_two["scaling_factor"], rel=1e-6)
    losses_one = [m["loss"] for m in state_one["history"]]
    losses_two = [m["loss"] for m in state_two["history"]]
    assert losses_two == pytest.approx(losses_one, rel=1e-5)
    if architecture != "standard":  # AuxK ran on both, on the same dead latents
        aux = [m["loss/auxiliary_reconstruction_loss"] for m in state_one["history"]]
        assert max(aux) > 0


@pytest.mark.slow
def test_a_killed_two_rank_run_resumes_on_one_rank(tiny_corpus, tiny_train_flags, tmp_path):
    out = tmp_path / "sae"
    state_path = out / "checkpoints/latest/trainer_state.pt"
    flags = [*tiny_train_flags, "--out", str(out), "--corpus", str(tiny_corpus)]
    job = _two_ranks_past_step(flags, state_path, 4)
    _kill_tree(job.pid)
    job.wait()
    state = torch.load(state_path, weights_only=False)
    assert state["world_size"] == 2 and not (out / "cfg.json").exists()

    resumed_total = state["n_tokens"] + 128 * 3
    result = CliRunner().invoke(
        commands, ["train", *flags, "--total-tokens", str(resumed_total), "--checkpoint-every", "1"]
    )
    assert result.exit_code == 0, result.output
    assert f"({resumed_total} tokens" in result.output, result.output
    final = torch.load(state_path, weights_only=False)
    assert final["world_size"] == 1
    assert final["n_steps"] == state["n_steps"] + 3
    assert final["history"][: len(state["history"])] == state["history"]
    assert (out / "cfg.json").exists()


@pytest.mark.slow
def test_a_stop_asked_of_one_rank_stops_both_with_one_checkpoint(
    tiny_corpus, tiny_train_flags, tmp_path
):
    """SIGINT to rank 1 only (a pod's SIGTERM, a stray signal): rank 0 must stop with it,
    at the same step, and write the checkpoint, which then resumes on one rank."""
    out = tmp_path / "sae"
    state_path = out / "checkpoints/latest/trainer_state.pt"
    flags = [*tiny_train_flags, "--out", str(out), "--corpus", str(tiny_corpus)]
    job = _two_ranks_past_step(flags, state_path, 2)
    try:
        rank_1 = next(
            p
            for p in psutil.Process(job.pid).children(recursive=True)
            if p.environ().get("RANK") == "1"
        )
        rank_1.send_signal(signal.SIGINT)
        _, stderr = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            _kill_tree(job.pid)
            job.wait()
    text = stderr.decode()
    stopped_at = {int(n) for n in re.findall(r"at step (\d+) ", text)}
    assert "stopped on another rank" in text, text[-3000:]  # rank 0, stopped by rank 1
    assert "stopped by SIGINT" in text, text[-3000:]  # rank 1
    state = torch.load(state_path, weights_only=False)
    assert stopped_at == {state["n_steps"]}, text[-3000:]  # both ranks, one step, saved
    assert state["world_size"] == 2 and not (out / "cfg.json").exists()

    resumed_total = state["n_tokens"] + 128 * 2
    result = CliRunner().invoke(commands, ["train", *flags, "--total-tokens", str(resumed_total)])
    assert result.exit_code == 0, result.output
    assert f"({resumed_total} tokens" in result.output, result.output


@pytest.mark.slow
def test_two_nodes_meet_through_torchrun_variables(tiny_corpus, tiny_train_flags, tmp_path):
    """What each pod of deploy/kubernetes/train-jobset.yaml does, as two local 'nodes'."""
    out = tmp_path / "sae"  # shared storage: both nodes see it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    interpedia = str(Path(sys.executable).parent / "interpedia")
    command = [interpedia, "train", *tiny_train_flags, "--corpus", str(tiny_corpus)]
    command += ["--out", str(out), "--total-tokens", str(128 * 4), "--checkpoint-every", "4"]
    nodes = [
        subprocess.Popen(
            [*command, "--nproc-per-node", "1"],
            env=ENV
            | {
                "PET_NNODES": "2",
                "PET_NODE_RANK": str(rank),
                "PET_MASTER_ADDR": "127.0.0.1",
                "PET_MASTER_PORT": str(port),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=600)[0].decode() for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    assert "training on 2 ranks" in outputs[0] and "saved" in outputs[0]
    assert "saved" not in outputs[1]  # rank 1 prints nothing of its own
    state = torch.load(out / "checkpoints/latest/trainer_state.pt", weights_only=False)
    assert (state["world_size"], state["n_tokens"]) == (2, 128 * 4)
    assert (out / "cfg.json").exists()


def _two_ranks_past_step(flags: list[str], state_path: Path, step: int) -> subprocess.Popen[bytes]:
    """`interpedia train --nproc-per-node 2`, long, once its checkpoint is past `step`."""
    interpedia = str(Path(sys.executable).parent / "interpedia")
    command = [interpedia, "train", *flags, "--total-tokens", str(128 * 5000)]
    job = subprocess.Popen(
        [*command, "--checkpoint-every", "2", "--nproc-per-node", "2"],
        env=ENV,
        start_new_session=True,  # its own process group: torchrun and both ranks
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    try:
        while not state_path.exists() or _steps(state_path) < step:
            assert job.poll() is None, job.stderr.read().decode()[-3000:] if job.stderr else ""
            assert time.monotonic() < deadline, "no 2-rank checkpoint in 300 s"
            time.sleep(0.2)
    except BaseException:
        _kill_tree(job.pid)
        job.wait()
        raise
    return job


def _kill_tree(pid: int) -> None:
    """SIGKILL torchrun and its ranks (each in its own session), as a lost node would be."""
    parent = psutil.Process(pid)
    for process in [*parent.children(recursive=True), parent]:
        process.send_signal(signal.SIGKILL)


def _steps(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=False)["n_steps"])
    except (OSError, RuntimeError, EOFError):  # caught mid-rename: try again
        return 0
