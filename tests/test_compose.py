"""The compose files describe a stack that can actually be built and wired together.

No Docker engine runs here, so this checks what can be checked statically: build
contexts, Dockerfiles and what they copy, commands that exist, ports that agree
with the settings, and environment variables that some settings class reads.
"""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILES = ["docker-compose.yaml", "docker-compose.demo.yaml", "docker-compose.gpu.yaml"]
PORTS = {"webapi": 3000, "inference": 5002, "autointerp": 5003, "trainer": 5004}


def _compose(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def _env_example() -> set[str]:
    return {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }


def _console_scripts() -> set[str]:
    scripts = set()
    for pyproject in ROOT.glob("*/*/pyproject.toml"):
        scripts |= set(tomllib.loads(pyproject.read_text())["project"].get("scripts", {}))
    return scripts


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_build_contexts_and_dockerfiles_exist(name):
    for service, spec in _compose(name)["services"].items():
        build = spec.get("build")
        if build is None:
            continue
        context = ROOT / build["context"]
        dockerfile = context / build["dockerfile"]
        assert context.is_dir(), f"{name}: {service} build context {context} is missing"
        assert dockerfile.is_file(), f"{name}: {service} Dockerfile {dockerfile} is missing"
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY ") and not line.startswith("COPY --from="):
                source = line.split()[1]
                assert (context / source).exists(), f"{dockerfile}: COPY {source} is missing"


def test_every_dockerfile_runs_an_installed_command():
    scripts = _console_scripts()
    for dockerfile in [*ROOT.glob("apps/*/Dockerfile"), *ROOT.glob("docker/*.Dockerfile")]:
        cmd = re.search(r'^CMD \["([^"]+)"', dockerfile.read_text(), re.M)
        assert cmd and cmd.group(1) in scripts, f"{dockerfile}: CMD is not a console script"


def test_ports_agree_with_settings():
    from interpedia_autointerp.settings import AutointerpSettings
    from interpedia_inference.settings import InferenceSettings
    from interpedia_trainer.settings import TrainerSettings
    from interpedia_webapi.settings import WebapiSettings

    defaults = {
        "webapi": WebapiSettings.model_fields["port"].default,
        "inference": InferenceSettings.model_fields["port"].default,
        "autointerp": AutointerpSettings.model_fields["port"].default,
        "trainer": TrainerSettings.model_fields["port"].default,
    }
    assert defaults == PORTS
    services = _compose("docker-compose.yaml")["services"]
    for service, port in PORTS.items():
        assert f"{port}:{port}" in services[service]["ports"]
        assert str(port) in (ROOT / f"apps/{service}/Dockerfile").read_text()
        prefix = f"INTERPEDIA_{service.upper()}_PORT"
        assert services[service]["environment"][prefix] == str(port)


def test_the_stack_waits_for_migrations():
    services = _compose("docker-compose.yaml")["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for service in [*PORTS, "worker"]:
        assert services[service]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["postgres"]["image"] == "pgvector/pgvector:pg18"
    assert "healthcheck" in services["postgres"]


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_variables_are_ones_interpedia_reads(name):
    known = _env_example() | {"HF_HUB_OFFLINE", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
    for service, spec in _compose(name)["services"].items():
        for variable in spec.get("environment") or {}:
            if variable.startswith("<<"):
                continue
            assert variable in known, f"{name}: {service} sets {variable}, which nothing reads"


def test_env_example_documents_every_variable():
    lines = (ROOT / ".env.example").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[i - 1].startswith("# "), f".env.example: {line} has no comment"
