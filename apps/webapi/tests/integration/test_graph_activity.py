"""GET /api/graph/transcoder-trainings and GET /api/graph/jobs: what the graph page follows
of the work under way for a model (the demo's transcoders and example graph). The real web
API over HTTP, the real graph service (without a worker) behind it, rows put at each state
as the trainer's recorded run and the graph worker leave them."""

import httpx
import pytest
from webapi_factories import (
    add_model,
    record_transcoder_step,
    register_transcoder_sources,
    transcoder_run,
)

from interpedia_testing.graph import queue_graph_job, report_graph_job

MODEL = "activity-api"
LAYER_0 = {"fvu": 0.5, "l0": 10.0, "dead_fraction": 0.1}
LAYER_1 = {"fvu": 0.7, "l0": 14.0, "dead_fraction": 0.3}


def _trainings(url: str, model_id: str = MODEL) -> list[dict]:
    answer = httpx.get(f"{url}/api/graph/transcoder-trainings", params={"modelId": model_id})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_transcoder_run_reports_tokens_per_layer_metrics_then_dashboards(activity_web) -> None:
    url, database_url = activity_web
    add_model(database_url, MODEL)
    run_id = transcoder_run(database_url, MODEL, "tc-api", total_tokens=1000)
    assert _trainings(url) == [
        {
            "name": "tc-api",
            "status": "queued",
            "nTokens": 0,
            "totalTokens": 1000,
            "fvu": None,
            "l0": None,
            "deadFraction": None,
            "layers": [],
            "layersWithDashboards": 0,
            "layerCount": 0,
        }
    ]

    record_transcoder_step(database_url, run_id, 1, 400, {0: LAYER_0, 1: LAYER_1})
    (running,) = _trainings(url)
    assert (running["status"], running["nTokens"]) == ("running", 400)
    assert running["fvu"] == pytest.approx(0.6) and running["l0"] == pytest.approx(12.0)
    assert running["deadFraction"] == pytest.approx(0.2)
    assert running["layers"] == [
        {"layer": 0, "fvu": 0.5, "l0": 10.0, "deadFraction": 0.1},
        {"layer": 1, "fvu": 0.7, "l0": 14.0, "deadFraction": 0.3},
    ]

    # Trained and registered: followed until every layer has its dashboards.
    record_transcoder_step(database_url, run_id, 2, 1000, {0: LAYER_0, 1: LAYER_1}, "succeeded")
    register_transcoder_sources(database_url, MODEL, "tc-api", layers=2, with_dashboards=1)
    (trained,) = _trainings(url)
    assert (trained["status"], trained["nTokens"]) == ("succeeded", 1000)
    assert (trained["layersWithDashboards"], trained["layerCount"]) == (1, 2)
    register_transcoder_sources(database_url, MODEL, "tc-api", layers=2, with_dashboards=2)
    assert _trainings(url) == []
    assert _trainings(url, "another-model") == []


def test_graph_jobs_come_with_progress_why_they_failed_or_their_graphs_page(activity_web) -> None:
    url, database_url = activity_web
    add_model(database_url, MODEL)
    ids = {slug: queue_graph_job(database_url, MODEL, slug) for slug in ("a-wait", "a-run")}
    report_graph_job(database_url, ids["a-run"], "doing", done=5, total=20, message="batches")
    ids["a-fail"] = queue_graph_job(database_url, MODEL, "a-fail")
    report_graph_job(database_url, ids["a-fail"], "failed", message="failed: out of memory")
    ids["a-done"] = queue_graph_job(database_url, MODEL, "a-done")
    report_graph_job(database_url, ids["a-done"], "succeeded", done=1, total=1, stored=True)

    answer = httpx.get(f"{url}/api/graph/jobs", params={"modelId": MODEL})
    assert answer.status_code == 200, answer.text
    jobs = answer.json()
    assert [j["slug"] for j in jobs] == ["a-done", "a-fail", "a-run", "a-wait"]
    done, failed, running, waiting = jobs
    assert done == {
        "jobId": ids["a-done"],
        "status": "succeeded",
        "modelId": MODEL,
        "slug": "a-done",
        "done": 1,
        "total": 1,
        "message": "",
        "url": f"{url}/{MODEL}/graph?slug=a-done",
    }
    assert (failed["status"], failed["message"], failed["url"]) == (
        "failed",
        "failed: out of memory",
        None,
    )
    assert (running["status"], running["done"], running["total"]) == ("doing", 5, 20)
    assert running["message"] == "batches" and running["url"] is None
    assert (waiting["jobId"], waiting["status"], waiting["done"]) == (ids["a-wait"], "todo", None)
    other = httpx.get(f"{url}/api/graph/jobs", params={"modelId": "another-model"})
    assert other.json() == []


@pytest.mark.parametrize("path", ["/api/graph/jobs", "/api/graph/transcoder-trainings"])
def test_a_missing_or_overlong_model_id_is_refused_with_why(activity_web, path: str) -> None:
    url, _ = activity_web
    for params in ({}, {"modelId": "m" * 129}):
        refused = httpx.get(url + path, params=params)
        assert refused.status_code == 422, refused.text
        assert "modelId" in refused.text
