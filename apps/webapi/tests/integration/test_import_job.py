"""With `import_runner=queue` the admin import is a Procrastinate job that a worker runs."""

import httpx
import psycopg
from conftest import ADMIN_KEY, make_settings
from webapi_factories import write_export

from interpedia_webapi.app import create_app


async def test_import_runs_as_a_queued_job(
    seeded, database_url, db_sessionmaker, tmp_path, monkeypatch
) -> None:
    from interpedia_core.settings import CommonSettings
    from interpedia_jobs.queue import create_job_app
    from interpedia_jobs.worker import run_worker

    monkeypatch.setenv("INTERPEDIA_DATA_DIR", str(tmp_path))  # the worker builds its settings
    export = write_export(tmp_path / "exp", "queued-model", "1-res-q", n_features=30)
    app = create_app(make_settings(None, tmp_path, import_runner="queue"))
    app.state.sessionmaker = db_sessionmaker
    app.state.database_url = database_url
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        started = (
            await client.post(
                "/api/admin/imports",
                json={"location": str(export)},
                headers={"x-api-key": ADMIN_KEY},
            )
        ).json()
    with psycopg.connect(database_url) as conn:
        (task,) = conn.execute(
            "SELECT task_name FROM procrastinate.procrastinate_jobs WHERE args->>'import_id' = %s",
            (str(started["id"]),),
        ).fetchone()
    assert task == "webapi:import_source"

    await run_worker(
        create_job_app(database_url),
        CommonSettings(database_url=database_url),
        database_url,
        queues=["imports"],
        wait=False,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        detail = (
            await client.get(
                f"/api/admin/imports/{started['id']}", headers={"x-api-key": ADMIN_KEY}
            )
        ).json()
    assert detail["status"] == "complete" and detail["filesDone"] == detail["filesTotal"]
