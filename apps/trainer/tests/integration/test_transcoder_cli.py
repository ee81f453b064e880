"""`interpedia train --architecture transcoder` as a subprocess against a real database.

The tiny random model (two layers) keeps it fast; the packaged model's sets are tested in
`test_transcoders.py`. Registration makes a `transcoder` source set with one inference-
enabled source per layer and queues its dashboards.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from procrastinate.jobs import Status
from sqlalchemy import select, text

from interpedia_db.connect import create_engine, create_sessionmaker
from interpedia_db.models import Source, SourceSet

INTERPEDIA = Path(sys.executable).parent / "interpedia"
FLAGS = [
    "--model",
    "tiny-random",
    "--d-sae",
    "32",
    "--k",
    "4",
    "--batch-size",
    "64",
    "--total-tokens",
    "256",
    "--context-size",
    "32",
]


def interpedia(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INTERPEDIA), *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def env(database_url: str, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("tc-cli")
    return os.environ | {
        "DATABASE_URL": database_url,
        "INTERPEDIA_DATA_DIR": str(root / "data"),
        "INTERPEDIA_CACHE_DIR": str(root / "cache"),
        "INTERPEDIA_TRAINER_CORPUS": str(tiny_corpus),
    }


async def test_train_all_layers_registers_a_transcoder_set(
    env: dict, database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "tc-cli"
    args = ["train", *FLAGS, "--architecture", "transcoder", "--layers", "all"]
    result = interpedia(env, *args, "--out", str(out), "--register", "tc-cli")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "registered transcoder set tiny-random/tc-cli (2 sources" in result.stdout
    assert "layer  1: fvu" in result.stdout
    assert sorted(p.name for p in out.glob("layer_*.safetensors")) == [
        "layer_0.safetensors",
        "layer_1.safetensors",
    ]

    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            source_set = await session.get(SourceSet, ("tiny-random", "tc-cli"))
            assert source_set is not None and source_set.type == "transcoder"
            sources = (
                await session.scalars(
                    select(Source).where(Source.set_name == "tc-cli").order_by(Source.layer)
                )
            ).all()
            assert [s.id for s in sources] == ["0-tc-cli", "1-tc-cli"]
            assert all(s.inference_enabled for s in sources)
            assert sources[1].hook_name == "blocks.1.mlp.hook_in"
            assert sources[1].architecture == "jumprelu_transcoder"
            assert sources[1].weights_uri == str(out.resolve() / "saelens" / "layer_1")
            assert sources[1].saelens_config["transcoder_set"] == str(out.resolve())
            locks = (
                await session.execute(
                    text(
                        "SELECT queueing_lock FROM procrastinate.procrastinate_jobs "
                        "WHERE task_name = 'trainer:compute_dashboards' AND status = :todo"
                    ),
                    {"todo": Status.TODO.value},
                )
            ).scalars()
            assert {
                "dashboards:tiny-random:0-tc-cli:0",
                "dashboards:tiny-random:1-tc-cli:0",
            } <= set(locks)
    finally:
        await engine.dispose()


def test_bad_layers_and_activation_fail_with_one_line(env: dict, tmp_path: Path) -> None:
    base = ["train", *FLAGS, "--architecture", "transcoder", "--out", str(tmp_path / "x")]
    result = interpedia(env, *base, "--layers", "0,5")
    assert result.returncode == 2
    assert "layer 5 is out of range; the model has 2 layers (0..1)" in result.stderr
    result = interpedia(env, *base, "--activation", "gelu")
    assert result.returncode == 2
    assert "unknown transcoder activation 'gelu'" in result.stderr
    assert not (tmp_path / "x").exists()
