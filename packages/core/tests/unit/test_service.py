"""The service shell every app shares: error bodies, 405s, NUL bytes, the shared secret."""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel

from interpedia_core.errors import ConfigurationError, Unprocessable
from interpedia_core.service import create_service_app, error_responses
from interpedia_core.serving import check_secret_for_host
from interpedia_core.settings import ServiceSettings
from interpedia_core.wire import RowId


class Body(BaseModel):
    name: str


def _app(secret: str | None = None, internal: bool = True):
    app = create_service_app(title="t", description="d", secret=secret, internal=internal)
    router = APIRouter()

    @router.get("/things/{thing_id}", responses=error_responses(Unprocessable))
    async def get_thing(thing_id: RowId) -> dict[str, int]:
        if thing_id == 7:
            raise Unprocessable("seven is not a thing")
        return {"id": thing_id}

    @router.post("/things")
    async def add_thing(body: Body) -> dict[str, str]:
        return {"name": body.name}

    app.include_router(router)
    app.state.ready = True
    return app


async def _request(app, method: str, path: str, **kwargs) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, path, **kwargs)


async def test_every_422_has_a_detail_and_an_errors_list_as_the_spec_says() -> None:
    app = _app()
    for path in ("/things/2147483648", "/things/7"):
        answer = await _request(app, "GET", path)
        assert answer.status_code == 422
        assert isinstance(answer.json()["detail"], str)
        assert isinstance(answer.json()["errors"], list)
    spec = app.openapi()
    declared = spec["paths"]["/things/{thing_id}"]["get"]["responses"]["422"]
    assert declared["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ValidationErrorResponse"
    )
    schema = spec["components"]["schemas"]["ValidationErrorResponse"]
    assert schema["properties"]["detail"]["type"] == "string"
    assert set(schema["required"]) == {"detail", "errors"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]


async def test_405_lists_every_method_of_the_path() -> None:
    answer = await _request(_app(), "DELETE", "/things")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/things", {"content": b'{"name": "a\\u0000b"}'}),
        ("GET", "/things/1%00", {}),
        ("GET", "/things/1?x=%00", {}),
    ],
)
async def test_nul_characters_are_refused_before_any_route(method, path, kwargs) -> None:
    headers = {"content-type": "application/json"}
    answer = await _request(_app(), method, path, headers=headers, **kwargs)
    assert answer.status_code == 422, answer.text
    assert "NUL" in answer.json()["detail"] and answer.json()["errors"]


async def test_an_escaped_backslash_before_u0000_is_text() -> None:
    answer = await _request(
        _app(),
        "POST",
        "/things",
        content=b'{"name": "a\\\\u0000b"}',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 200 and answer.json() == {"name": "a\\u0000b"}


async def test_an_internal_service_with_a_secret_refuses_requests_without_it() -> None:
    app = _app(secret="s3cret")
    assert (await _request(app, "GET", "/things/1")).status_code == 401
    wrong = await _request(app, "GET", "/things/1", headers={"x-secret-key": "nope"})
    assert wrong.status_code == 401 and "X-SECRET-KEY" in wrong.json()["detail"]
    right = await _request(app, "GET", "/things/1", headers={"x-secret-key": "s3cret"})
    assert right.status_code == 200
    assert (await _request(app, "GET", "/health")).status_code == 200
    spec = app.openapi()
    assert "401" in spec["paths"]["/things/{thing_id}"]["get"]["responses"]
    assert "401" not in spec["paths"]["/health"]["get"]["responses"]
    public = _app(secret="s3cret", internal=False).openapi()
    assert "401" not in public["paths"]["/things/{thing_id}"]["get"]["responses"]


def test_off_loopback_an_internal_service_needs_a_secret() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        check_secret_for_host(ServiceSettings(host=host), "INTERPEDIA_X_")
    check_secret_for_host(ServiceSettings(host="0.0.0.0", shared_secret="s"), "INTERPEDIA_X_")
    with pytest.raises(ConfigurationError, match="INTERPEDIA_SECRET"):
        check_secret_for_host(ServiceSettings(host="0.0.0.0"), "INTERPEDIA_X_")
    with pytest.raises(ConfigurationError, match="needs a secret"):
        check_secret_for_host(ServiceSettings(host="inference.internal"), "INTERPEDIA_X_")


def test_the_secret_comes_from_the_service_the_shared_variable_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    monkeypatch.setenv("INTERPEDIA_SECRET_FILE", str(secret_file))
    assert ServiceSettings().secret == "from-file"
    monkeypatch.setenv("INTERPEDIA_SECRET", "shared")
    assert ServiceSettings().secret == "shared"
    assert ServiceSettings(secret="own").secret == "own"
    monkeypatch.setenv("INTERPEDIA_SECRET", "")  # compose's ${INTERPEDIA_SECRET:-}
    monkeypatch.setenv("INTERPEDIA_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="INTERPEDIA_SECRET_FILE"):
        ServiceSettings()


@pytest.mark.parametrize("service", ["inference", "autointerp", "trainer"])
def test_serve_refuses_to_listen_beyond_loopback_without_a_secret(
    service: str, tmp_path: Path
) -> None:
    """The real commands, as compose or a user would start them: a clear line, exit 2."""
    env = {"PATH": str(Path(sys.executable).parent), "INTERPEDIA_DATA_DIR": str(tmp_path)}
    command = Path(sys.executable).parent / f"interpedia-{service}"
    done = subprocess.run(
        [str(command), "serve", "--host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "needs a secret" in done.stderr and "INTERPEDIA_SECRET" in done.stderr
    assert "Traceback" not in done.stderr
