"""deploy/kubernetes/train-jobset.yaml stays in step with `interpedia train` and torchrun."""

from pathlib import Path

import yaml
from torch.distributed.run import get_args_parser
from typer.main import get_command

from interpedia_trainer.cli import commands

MANIFEST = Path(__file__).resolve().parents[4] / "deploy/kubernetes/train-jobset.yaml"


def test_the_jobset_runs_interpedia_train_under_torchrun_variables() -> None:
    jobset = yaml.safe_load(MANIFEST.read_text())
    replicated = jobset["spec"]["replicatedJobs"][0]
    job = replicated["template"]["spec"]
    container = job["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[:2] == ["interpedia", "train"]

    train = get_command(commands).commands["train"]  # type: ignore[attr-defined]
    known = {flag for param in train.params for flag in param.opts}
    args = dict(arg.split("=", 1) for arg in command[2:])
    assert set(args) <= known, set(args) - known
    env = {e["name"]: e for e in container["env"]}
    torchrun_variables = {f"PET_{action.dest.upper()}" for action in get_args_parser()._actions}
    assert {name for name in env if name.startswith("PET_")} <= torchrun_variables

    nodes = int(env["PET_NNODES"]["value"])
    assert job["parallelism"] == job["completions"] == nodes
    assert job["completionMode"] == "Indexed"  # the completion index is the node rank
    rank_source = env["PET_NODE_RANK"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert "job-completion-index" in rank_source
    name = jobset["metadata"]["name"]
    assert env["PET_MASTER_ADDR"]["value"] == f"{name}-{replicated['name']}-0-0.{name}"
    ranks = nodes * int(args["--nproc-per-node"])
    gpus = int(container["resources"]["limits"]["nvidia.com/gpu"])
    assert gpus == int(args["--nproc-per-node"])
    assert int(args["--batch-size"]) % ranks == 0
