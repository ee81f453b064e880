"""GET /v1/jobs: a model's graph jobs under way or just ended, which the graph page shows
(the demo's example graph while it is made). Jobs are put at each state in the database as
the service and its worker leave them; no worker runs on this database."""

import pytest

from interpedia_graph.app import create_app
from interpedia_graph.settings import GraphSettings
from interpedia_testing.asgi import app_client
from interpedia_testing.graph import queue_graph_job, report_graph_job

MODEL = "smollm2-135m"


@pytest.fixture(scope="module")
def jobs_database(make_database) -> tuple[str, dict[str, int]]:
    import psycopg

    url = make_database("graph_job_list")
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO models (id, display_name, layers, d_model) VALUES (%s, %s, 30, 576)",
            (MODEL, MODEL),
        )
    ids = {slug: queue_graph_job(url, MODEL, slug) for slug in ("waiting", "running")}
    ids["old-failure"] = queue_graph_job(url, MODEL, "old-failure")
    report_graph_job(
        url, ids["old-failure"], "failed", message="failed: long ago", seconds_ago=7200
    )
    ids["elsewhere"] = queue_graph_job(url, "other-model", "elsewhere")
    ids["failure"] = queue_graph_job(url, MODEL, "failure")
    report_graph_job(url, ids["failure"], "failed", message="failed: out of memory")
    ids["stored"] = queue_graph_job(url, MODEL, "stored")
    report_graph_job(url, ids["stored"], "succeeded", done=1, total=1, stored=True)
    report_graph_job(url, ids["running"], "doing", done=3, total=12, message="backward passes")
    return url, ids


async def test_the_models_jobs_under_way_or_just_ended_newest_first(jobs_database) -> None:
    url, ids = jobs_database
    async with app_client(create_app(GraphSettings(database_url=url))) as client:
        listed = (await client.get("/v1/jobs", params={"model_id": MODEL})).json()["jobs"]
        assert [j["slug"] for j in listed] == ["stored", "failure", "running", "waiting"]
        stored, failure, running, waiting = listed
        assert stored["job_id"] == ids["stored"] and stored["status"] == "succeeded"
        assert stored["graph"]["slug"] == "stored" and stored["graph"]["n_nodes"] == 3
        assert (failure["status"], failure["message"]) == ("failed", "failed: out of memory")
        assert failure["graph"] is None
        assert (running["status"], running["done"], running["total"]) == ("doing", 3, 12)
        assert (waiting["status"], waiting["done"], waiting["model_id"]) == ("todo", None, MODEL)

        active = await client.get("/v1/jobs", params={"model_id": MODEL, "ended_within": 0})
        assert [j["slug"] for j in active.json()["jobs"]] == ["running", "waiting"]
        week = await client.get("/v1/jobs", params={"model_id": MODEL, "ended_within": 86400})
        assert "old-failure" in [j["slug"] for j in week.json()["jobs"]]
        newest = await client.get("/v1/jobs", params={"model_id": MODEL, "limit": 1})
        assert [j["slug"] for j in newest.json()["jobs"]] == ["stored"]
        other = await client.get("/v1/jobs", params={"model_id": "other-model"})
        assert [j["slug"] for j in other.json()["jobs"]] == ["elsewhere"]


async def test_bad_listings_are_refused_with_why(jobs_database) -> None:
    url, _ = jobs_database
    async with app_client(create_app(GraphSettings(database_url=url))) as client:
        for params in (
            {},
            {"model_id": "m" * 257},
            {"model_id": MODEL, "limit": 0},
            {"model_id": MODEL, "limit": 101},
            {"model_id": MODEL, "ended_within": -1},
        ):
            refused = await client.get("/v1/jobs", params=params)
            assert refused.status_code == 422, (params, refused.text)
            assert refused.json()["detail"], params
