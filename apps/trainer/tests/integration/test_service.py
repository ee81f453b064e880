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
        ({"corpus": "/" + "x" * 300}, 400, "cannot be read"),  # a name too long: was a 500
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


async def test_with_a_secret_strangers_cannot_queue_training(database_url, corpus, tmp_path):
    """`POST /v1/train` with `{}` queued a full default run for anyone who could connect."""
    settings = TrainerSettings(
        database_url=database_url, corpus=corpus, data_dir=tmp_path, shared_secret="s3cret"
    )
    async with app_client(create_app(settings)) as client:
        refused = await client.post("/v1/train", json={})
        assert refused.status_code == 401 and "X-SECRET-KEY" in refused.json()["detail"]
        assert (await client.get("/v1/runs")).status_code == 401
        allowed = await client.get("/v1/runs", headers={"X-SECRET-KEY": "s3cret"})
        assert allowed.status_code == 200


async def test_training_under_an_existing_source_id_is_a_conflict(client, weightless_source):
    """A run's SAE becomes source `{layer}-{source_set}`: it must not replace a stored one."""
    await weightless_source("smollm2-135m", "res-taken", layer=6, n_layers=30, d_model=576)
    response = await client.post("/v1/train", json={"source_set": "res-taken"})
    assert response.status_code == 409, response.text
    assert "6-res-taken" in response.json()["detail"]
    queued = await client.post("/v1/train", json={"source_set": "res-fresh", "d_sae": 64, "k": 8})
    assert queued.status_code == 200, queued.text
    again = await client.post("/v1/train", json={"source_set": "res-fresh", "d_sae": 64, "k": 8})
    assert again.status_code == 409 and "already training" in again.json()["detail"]
    [job_id] = queued.json()["job_ids"]
    assert (await client.post(f"/v1/jobs/{job_id}/cancel")).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/v1/runs/2147483648",
        "/v1/runs/-9223372036854775809",
        "/v1/jobs/9223372036854775808",
        "/v1/runs/compare?run_ids=1&run_ids=2147483648",
    ],
)
async def test_ids_beyond_their_columns_are_refused_not_500(client, path):
    response = await client.get(path)
    assert response.status_code == 422, response.text
    assert response.json()["errors"]


async def test_cancelling_an_unknown_huge_job_is_refused(client):
    response = await client.post("/v1/jobs/9223372036854775808/cancel")
    assert response.status_code == 422, response.text
