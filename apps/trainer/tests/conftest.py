"""Fixtures shared by the trainer's tests."""

from pathlib import Path

import pytest

from interpedia_trainer.concepts import builtin_concepts


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of short .txt documents: enough tokens for a few tiny training batches."""
    folder = tmp_path_factory.mktemp("corpus")
    texts = [" ".join(lines) for lines in builtin_concepts().values()]
    for i in range(3):
        for j, text in enumerate(texts):
            (folder / f"{i}-{j}.txt").write_text(text)
    return folder


@pytest.fixture(scope="session")
def tiny_train_flags() -> list[str]:
    """`interpedia train` flags for a seconds-long run on the tiny model (add --out etc.)."""
    return [
        "--model",
        "tiny-random",
        "--hook",
        "blocks.1.hook_resid_post",
        "--d-sae",
        "64",
        "--k",
        "4",
        "--batch-size",
        "128",
        "--context-size",
        "32",
    ]
