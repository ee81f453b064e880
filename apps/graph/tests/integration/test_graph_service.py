"""The graph service end to end: real processes, the packaged model, a quick transcoder set.

Graphs are traced with few feature nodes (they cost a backward pass each) on short prompts.
"""

import gzip
import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import psycopg
import pytest

from interpedia_formats.neuronpedia_graph import feature_of, parse_graph

pytestmark = pytest.mark.slow

MODEL, SET, PROMPT = "smollm2-135m", "tc-test", "The capital of France is"


def _graph_body(slug: str, **overrides: Any) -> dict[str, Any]:
    return {
        "model_id": MODEL,
        "prompt": PROMPT,
        "slug": slug,
        "max_feature_nodes": 24,
        "batch_size": 24,
        **overrides,
    }


def _wait(client: httpx.Client, job_id: int, until: set[str], timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in until:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not reach {until}: {job}")


def _rows(database_url: str, slug: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM graphs WHERE slug = %s", (slug,)).fetchone()[0]


@pytest.fixture(scope="module")
def client(graph_service):
    with httpx.Client(base_url=graph_service.url, timeout=120) as http:
        yield http


@pytest.fixture(scope="module")
def capital_graph(client) -> dict:
    """One graph for the module: queued, followed to the end, exported."""
    job = client.post("/v1/graphs", json=_graph_body("capital-france")).json()
    # Queued; a free worker may already have taken it by the time the answer is built.
    assert job["status"] in ("todo", "doing") and job["slug"] == "capital-france"
    progress = set()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        seen = client.get(f"/v1/jobs/{job['job_id']}").json()
        progress.add((seen["status"], seen["done"], seen["total"]))
        if seen["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.3)
    assert seen["status"] == "succeeded", seen
    exported = client.get(f"/v1/graphs/{MODEL}/capital-france")
    return {"job": seen, "progress": progress, "json": exported.json()}


def test_a_queued_graph_reports_progress_and_is_stored_in_neuronpedias_format(
    capital_graph, database_url
) -> None:
    job, document = capital_graph["job"], capital_graph["json"]
    # Progress between the start and the end: rows of backward passes, out of a total.
    assert any(s == "doing" and total for s, _, total in capital_graph["progress"])
    graph = parse_graph(json.dumps(document))  # Neuronpedia's format, checked
    assert graph.metadata.scan == MODEL and graph.metadata.slug == "capital-france"
    assert graph.metadata.prompt_tokens == [
        "<|im_start|>",
        "The",
        " capital",
        " of",
        " France",
        " is",
    ]
    assert graph.metadata.info["transcoder_set"] == SET
    assert 0 <= graph.metadata.info["replacement_score"] <= 1
    features = [feature_of(n) for n in graph.nodes if feature_of(n) is not None]
    assert features and all(0 <= layer < 30 and 0 <= index < 128 for layer, index in features)
    logits = [n for n in graph.nodes if n.feature_type == "logit"]
    top = next(n for n in logits if n.model_dump()["is_target_logit"])
    assert "Paris" in top.clerp  # p(" Paris") = 0.749 with SmolLM2's rope base
    assert job["graph"]["n_nodes"] == len(graph.nodes)
    assert job["graph"]["n_links"] == len(graph.links) > 0
    assert _rows(database_url, "capital-france") == 1


def test_the_forward_pass_targets_what_the_model_predicts(client) -> None:
    answer = client.post("/forward-pass", json={"prompt": PROMPT, "max_n_logits": 5}).json()
    assert answer["input_tokens"][1:] == ["The", " capital", " of", " France", " is"]
    first = answer["salient_logits"][0]
    assert first["token"] == " Paris" and first["probability"] == pytest.approx(0.749, abs=0.01)
    assert answer["cumulative_probability"] <= 1


def test_steering_a_graphs_feature_changes_the_generation(client, capital_graph) -> None:
    node = next(
        n for n in capital_graph["json"]["nodes"] if n["feature_type"] == "cross layer transcoder"
    )
    layer, index = feature_of(node)
    body = {
        "model_id": MODEL,
        "prompt": PROMPT,
        "n_tokens": 4,
        "top_k": 3,
        "features": [
            {
                "layer": layer,
                "index": index,
                "token_active_position": node["ctx_idx"],
                "steer_position": 5,
                "delta": 400.0,
            }
        ],
    }
    answer = client.post("/steer", json=body).json()
    assert answer["DEFAULT_GENERATION"].startswith("<|im_start|>The capital of France is Paris")
    assert answer["STEERED_GENERATION"] != answer["DEFAULT_GENERATION"]
    last_prompt_token = answer["DEFAULT_LOGITS_BY_TOKEN"][5]
    assert (
        last_prompt_token["token"] == " is"
        and last_prompt_token["top_logits"][0]["token"] == " Paris"
    )
    assert answer["DEFAULT_LOGITS_BY_TOKEN"][0]["top_logits"] == []
    ablated = client.post(
        "/steer", json=body | {"features": [body["features"][0] | {"delta": None, "ablate": True}]}
    )
    assert ablated.status_code == 200


def test_generate_graph_answers_with_the_graph_and_uploads_to_a_signed_url(client) -> None:
    received: dict[str, Any] = {}

    class Bucket(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received["encoding"] = self.headers.get("Content-Encoding")
            received["graph"] = json.loads(gzip.decompress(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    bucket = HTTPServer(("127.0.0.1", 0), Bucket)
    threading.Thread(target=bucket.serve_forever, daemon=True).start()
    try:
        body = {
            "model_id": MODEL,
            "prompt": "One, two, three,",
            "slug_identifier": "count-np",
            "max_feature_nodes": 16,
            "signed_url": f"http://127.0.0.1:{bucket.server_port}/graphs/count.json",
            "compress": True,
        }
        answer = client.post("/generate-graph", json=body, timeout=900)
        assert answer.status_code == 200, answer.text
        assert answer.json()["success"].startswith("Graph uploaded successfully")
        assert received["encoding"] == "gzip"
        assert received["graph"]["metadata"]["slug"] == "count-np"
        again = client.post(
            "/generate-graph",
            json={k: v for k, v in body.items() if k != "signed_url"}
            | {"slug_identifier": "count-2"},
            timeout=900,
        )
        assert parse_graph(again.content).metadata.slug == "count-2"
    finally:
        bucket.shutdown()
    assert client.get("/check-busy").json() == {"busy": False}


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"model_id": "gpt2-small"}, 404, "this graph service traces smollm2-135m"),
        ({"transcoder_set": "tc-nope"}, 404, "unknown transcoder set 'tc-nope'"),
        ({"prompt": "  "}, 400, "the prompt is empty"),
        ({"prompt": "word " * 70}, 400, "graphs are traced for at most 64"),
        ({"node_threshold": 1.5}, 422, "node_threshold"),
        ({"edge_threshold": 0}, 422, "edge_threshold"),
        ({"desired_logit_prob": 1.0}, 422, "desired_logit_prob"),
        ({"max_feature_nodes": 100_000}, 400, "max_feature_nodes may be at most 2048"),
        ({"slug": "has spaces"}, 400, "a slug has"),
        ({"slug": "capital-france"}, 409, "already has a graph 'capital-france'"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "chat roles"),
    ],
)
def test_bad_requests_are_refused_with_why_and_queue_nothing(
    client, capital_graph, database_url, change, status, message
) -> None:
    answer = client.post("/v1/graphs", json=_graph_body("bad-one") | change)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["detail"]
    assert _rows(database_url, "bad-one") == 0
    assert client.get("/check-busy").json() == {"busy": False}


def test_a_file_not_in_neuronpedias_format_is_refused_and_nothing_stored(client) -> None:
    before = client.get("/v1/graphs").json()["graphs"]
    bad = {"metadata": {"slug": "x", "scan": MODEL}, "nodes": [], "links": []}
    answer = client.post("/v1/graphs/import", content=json.dumps(bad))
    assert answer.status_code == 400
    assert "metadata.prompt_tokens: Field required" in answer.json()["detail"]
    assert client.get("/v1/graphs").json()["graphs"] == before


def test_an_exported_graph_imports_under_another_slug(client, capital_graph) -> None:
    document = capital_graph["json"]
    document["metadata"]["slug"] = "capital-copy"
    answer = client.post("/v1/graphs/import", content=gzip.compress(json.dumps(document).encode()))
    assert answer.status_code == 200, answer.text
    assert answer.json()["n_links"] == len(document["links"])
    again = client.get(f"/v1/graphs/{MODEL}/capital-copy").json()
    assert again["nodes"] == document["nodes"]


def test_a_busy_service_refuses_more_graphs_and_a_cancelled_job_stores_nothing(
    client, database_url
) -> None:
    first = client.post("/v1/graphs", json=_graph_body("busy-1", max_feature_nodes=512)).json()
    second = client.post("/v1/graphs", json=_graph_body("busy-2")).json()
    third = client.post("/v1/graphs", json=_graph_body("busy-3"))
    assert third.status_code == 409 and "the graph workers are busy" in third.json()["detail"]
    assert client.get("/check-busy").json() == {"busy": True}
    now = client.post(
        "/generate-graph", json={"model_id": MODEL, "prompt": PROMPT, "slug_identifier": "np-busy"}
    )
    assert now.status_code == 409 and "busy" in now.json()["detail"]
    cancelled = client.delete(f"/v1/jobs/{second['job_id']}").json()
    assert cancelled["status"] == "cancelled"  # still waiting: never runs
    _wait(client, first["job_id"], {"doing"})
    deadline = time.monotonic() + 300
    while client.get(f"/v1/jobs/{first['job_id']}").json()["done"] in (None, 0):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    client.delete(f"/v1/jobs/{first['job_id']}")
    assert _wait(client, first["job_id"], {"aborted", "failed", "succeeded"})["status"] == "aborted"
    assert _rows(database_url, "busy-1") == 0 and _rows(database_url, "busy-2") == 0


def test_a_graph_whose_worker_dies_is_retried_by_another(
    client, graph_service, database_url
) -> None:
    job = client.post("/v1/graphs", json=_graph_body("survivor", max_feature_nodes=256)).json()
    _wait(client, job["job_id"], {"doing"})
    deadline = time.monotonic() + 300
    while client.get(f"/v1/jobs/{job['job_id']}").json()["done"] in (None, 0):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    graph_service.kill_worker(graph_service.workers[0])
    graph_service.start_worker(heartbeat=0.5, stalled_after=3)
    done = _wait(client, job["job_id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    assert _rows(database_url, "survivor") == 1


def test_a_stopped_worker_requeues_its_graph_at_once(client, graph_service, database_url) -> None:
    job = client.post("/v1/graphs", json=_graph_body("stopped", max_feature_nodes=256)).json()
    _wait(client, job["job_id"], {"doing"})
    deadline = time.monotonic() + 300
    while client.get(f"/v1/jobs/{job['job_id']}").json()["done"] in (None, 0):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    worker = graph_service.workers[0]
    worker.send_signal(signal.SIGTERM)  # the shared stop: the graph stops at its next batch
    assert worker.wait(timeout=60) == 128 + signal.SIGTERM
    graph_service.workers.remove(worker)
    requeued = _wait(client, job["job_id"], {"todo", "failed", "succeeded"}, timeout=30)
    assert requeued["status"] == "todo", requeued
    assert _rows(database_url, "stopped") == 0
    graph_service.start_worker()
    done = _wait(client, job["job_id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    assert _rows(database_url, "stopped") == 1


def test_chat_prompts_parse_back_into_turns(client) -> None:
    rendered = client.post(
        "/forward-pass",
        json={
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]
        },
    ).json()["prompt"]
    parsed = client.post("/parse-chat-prompt", json={"prompt": rendered}).json()
    assert parsed["is_chat"] and parsed["messages"][-2:] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": ""},
    ]
    assert parsed["unsteerable_positions"] == [0]


def test_the_cli_exports_and_imports_graphs(capital_graph, graph_service, tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    command = str(Path(sys.executable).parent / "interpedia-graph")
    out = tmp_path / "capital.json"
    exported = subprocess.run(
        [command, "export", MODEL, "capital-france", "--out", str(out)],
        env=graph_service.env,
        capture_output=True,
        text=True,
    )
    assert exported.returncode == 0, exported.stderr
    document = json.loads(out.read_text())
    assert document["links"] == capital_graph["json"]["links"]
    document["metadata"]["slug"] = "capital-cli"
    out.write_text(json.dumps(document))
    imported = subprocess.run(
        [command, "import", str(out)], env=graph_service.env, capture_output=True, text=True
    )
    assert imported.returncode == 0, imported.stderr
    assert '"slug": "capital-cli"' in imported.stdout
    out.write_text('{"metadata": {}}')
    refused = subprocess.run(
        [command, "import", str(out)], env=graph_service.env, capture_output=True, text=True
    )
    assert refused.returncode == 2 and "Neuronpedia's format" in refused.stderr
