"""The trainer service validates before it enqueues, records runs and reports jobs."""

import pytest

from interpedia_db.models import TrainingRun
from interpedia_testing.asgi import app_client
from interpedia_trainer.app import create_app
from interpedia_trainer.settings import TrainerSettings


@pytest.fixture
def corpus(tmp_path):
    (tmp_path / "speech.txt").write_text("Fellow citizens, the state of the union is strong.")
    return str(tmp_path)


@pytest.fixture
async def client(database_url, corpus, tmp_path):
    settings = TrainerSettings(database_url=database_url, corpus=corpus, data_dir=tmp_path)
    async with app_client(create_app(settings)) as client:
        yield client


async def test_health(client):
    assert (await client.get("/health")).json() == {"status": "ok"}


async def test_train_records_a_run_and_enqueues_its_job(client, db_sessionmaker):
    response = await client.post("/v1/train", json={"architecture": "topk", "d_sae": 64, "k": 8})
    assert response.status_code == 200, response.text
    [job_id] = response.json()["job_ids"]

    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["task"] == "trainer:train_sae" and job["status"] == "todo"
    async with db_sessionmaker() as session:
        run = await session.get(TrainingRun, job["args"]["run_id"])
    assert run.status == "queued" and run.job_id == job_id and run.config["d_sae"] == 64

    cancelled = (await client.post(f"/v1/jobs/{job_id}/cancel")).json()
    assert cancelled["status"] == "cancelled"
    again = await client.post(f"/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409 and "already finished" in again.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"d_sae": 0}, 422, "d_sae"),
        ({"d_sae": 16, "k": 32}, 422, "cannot exceed d_sae"),
        ({"hook_name": "blocks.6.hook_nonsense"}, 400, "unknown hook"),
        ({"corpus": "/nonexistent/corpus"}, 400, "does not exist"),
        ({"architecture": "magic"}, 422, "architecture"),
    ],
)
async def test_bad_training_requests_are_refused_before_any_work(client, body, status, detail):
    response = await client.post("/v1/train", json=body)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


async def test_empty_corpus_folder_is_refused(client, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    response = await client.post("/v1/train", json={"corpus": str(empty)})
    assert response.status_code == 400 and "no .txt files" in response.json()["detail"]


async def test_dashboards_split_a_source_into_feature_ranges(client, weightless_source):
    await weightless_source("dash-model", "res-x", d_sae=10)
    response = await client.post(
        "/v1/dashboards",
        json={"model_id": "dash-model", "source_id": "1-res-x", "features_per_job": 4},
    )
    assert response.status_code == 200, response.text
    jobs = [(await client.get(f"/v1/jobs/{j}")).json() for j in response.json()["job_ids"]]
    assert [(j["args"]["start"], j["args"]["stop"]) for j in jobs] == [(0, 4), (4, 8), (8, 10)]


async def test_unknown_job_and_source_are_404(client):
    assert (await client.get("/v1/jobs/999999")).status_code == 404
    response = await client.post("/v1/dashboards", json={"source_id": "0-nope"})
    assert response.status_code == 404 and "0-nope" in response.json()["detail"]
