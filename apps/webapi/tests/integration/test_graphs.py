"""Neuronpedia's graph API on the web API, with the real graph service behind it, and the
official `neuronpedia` client's graph calls against it."""

import gzip
import json

import httpx
import psycopg
import pytest
import requests
from graph_stack import GRAPH_MODEL, GRAPH_SET

pytestmark = pytest.mark.slow
PROMPT = "The capital of France is"


@pytest.fixture
def np_client(graph_web, seeded, monkeypatch):
    """The `neuronpedia` client pointed at our server (it reads its base URL at import)."""
    import neuronpedia
    from neuronpedia.requests.base_request import NPRequest

    monkeypatch.setattr(NPRequest, "BASE_URL", graph_web.url + "/api")
    monkeypatch.setenv("NEURONPEDIA_API_KEY", seeded["alice"])
    return neuronpedia


def _graph_rows(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM graphs").fetchone()[0]


def test_the_neuronpedia_client_generates_uploads_gets_lists_and_deletes_graphs(
    np_client, graph_web, tmp_path
) -> None:
    from neuronpedia.np_graph_metadata import NPGraphMetadata

    made = NPGraphMetadata.generate(GRAPH_MODEL, PROMPT, "np-client-graph")
    assert made.model_id == GRAPH_MODEL and made.slug == "np-client-graph"
    assert made.prompt_tokens[1:] == ["The", " capital", " of", " France", " is"]
    document = requests.get(made.json_url, timeout=30).json()  # the graph itself
    assert document["metadata"]["slug"] == "np-client-graph"
    assert document["metadata"]["info"]["transcoder_set"] == GRAPH_SET

    # Upload the same graph under another slug, as a file (gzipped PUT to our signed URL).
    document["metadata"]["slug"] = "np-client-upload"
    path = tmp_path / "np-client-upload.json"
    path.write_text(json.dumps(document))
    uploaded = NPGraphMetadata.upload_file(str(path))
    assert uploaded.slug == "np-client-upload" and uploaded.prompt == document["metadata"]["prompt"]

    owned = {g.slug for g in NPGraphMetadata.list_owned()}
    assert {"np-client-graph", "np-client-upload"} <= owned
    got = NPGraphMetadata.get(GRAPH_MODEL, "np-client-upload")
    assert got.json_url.endswith(f"/api/graph/{GRAPH_MODEL}/np-client-upload/json")

    got.delete()
    with pytest.raises(requests.exceptions.HTTPError, match="404"):
        NPGraphMetadata.get(GRAPH_MODEL, "np-client-upload")
    assert "np-client-graph" in {g.slug for g in NPGraphMetadata.list_owned()}


def _signed_put(client: httpx.Client, key: str, size: int) -> dict:
    answer = client.post(
        "/api/graph/signed-put",
        json={"filename": "bad.json", "contentLength": size},
        headers={"x-api-key": key},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_upload_not_in_neuronpedias_format_is_refused_and_nothing_stored(
    graph_web, seeded, database_url
) -> None:
    key = seeded["alice"]
    before = _graph_rows(database_url)
    bad = gzip.compress(json.dumps({"metadata": {"slug": "x"}, "nodes": []}).encode())
    with httpx.Client(base_url=graph_web.url, timeout=60) as client:
        signed = _signed_put(client, key, len(bad))
        put = httpx.put(signed["url"], content=bad, headers={"Content-Encoding": "gzip"})
        assert put.status_code == 200
        saved = client.post(
            "/api/graph/save-to-db",
            json={"putRequestId": signed["putRequestId"]},
            headers={"x-api-key": key},
        )
        assert saved.status_code == 400
        assert "Neuronpedia's format" in saved.json()["detail"]
        assert "metadata.scan: Field required" in saved.json()["detail"]

        # Same shape (64 hex digits, last in the URL), one digit changed: refused as forged.
        assert "signature=" in signed["url"].rsplit("&", 1)[-1]
        forged = signed["url"][:-1] + ("1" if signed["url"].endswith("0") else "0")
        assert httpx.put(forged, content=bad).status_code == 403
        too_big = _signed_put(client, key, 10)
        assert httpx.put(too_big["url"], content=bad).status_code == 400
        other = client.post(
            "/api/graph/save-to-db",
            json={"putRequestId": signed["putRequestId"]},
            headers={"x-api-key": seeded["bob"]},
        )
        assert other.status_code == 404  # not bob's upload
    assert _graph_rows(database_url) == before


def test_graph_jobs_subgraphs_tokenize_chat_and_steering_through_the_web_api(
    graph_web, seeded
) -> None:
    key = {"x-api-key": seeded["alice"]}
    with httpx.Client(base_url=graph_web.url, timeout=300) as client:
        bad = client.post(
            "/api/graph/jobs", json={"modelId": GRAPH_MODEL, "prompt": "x", "nodeThreshold": 2}
        )
        assert bad.status_code == 422 and "nodeThreshold" in bad.json()["detail"]
        unknown = client.post(
            "/api/graph/jobs",
            json={"modelId": GRAPH_MODEL, "prompt": PROMPT, "sourceSetName": "tc-none"},
        )
        assert unknown.status_code == 404 and "tc-none" in unknown.json()["detail"]
        job = client.post(
            "/api/graph/jobs",
            json={
                "modelId": GRAPH_MODEL,
                "prompt": PROMPT,
                "slug": "web-job",
                "maxFeatureNodes": 16,
            },
            headers=key,
        ).json()
        while job["status"] not in ("succeeded", "failed"):
            job = client.get(f"/api/graph/jobs/{job['jobId']}").json()
        assert job["status"] == "succeeded" and job["url"].endswith("/graph?slug=web-job")

        document = client.get(f"/api/graph/{GRAPH_MODEL}/web-job/json").json()
        pinned = [n["node_id"] for n in document["nodes"][:3]]
        saved = client.post(
            "/api/graph/subgraph/save",
            json={
                "modelId": GRAPH_MODEL,
                "slug": "web-job",
                "pinnedIds": pinned,
                "supernodes": [["capital", *pinned[:2]]],
                "clerps": [],
                "pruningThreshold": 0.6,
            },
            headers=key,
        ).json()
        shared = client.get(f"/api/graph/subgraph/{saved['subgraphId']}").json()  # no key
        assert shared["pinnedIds"] == pinned and shared["supernodes"][0][0] == "capital"
        listed = client.post(
            "/api/graph/subgraph/list",
            json={"modelId": GRAPH_MODEL, "slug": "web-job"},
            headers=key,
        ).json()
        assert [s["id"] for s in listed["subgraphs"]] == [saved["subgraphId"]]
        forbidden = client.post(
            "/api/graph/subgraph/delete",
            json={"subgraphId": saved["subgraphId"]},
            headers={"x-api-key": seeded["bob"]},
        )
        assert forbidden.status_code == 403

        tokens = client.post(
            "/api/graph/tokenize", json={"modelId": GRAPH_MODEL, "prompt": PROMPT}
        ).json()
        assert tokens["salient_logits"][0]["token"] == " Paris"
        chat = client.post(
            "/api/graph/parse-chat-prompt",
            json={"modelId": GRAPH_MODEL, "prompt": "<|im_start|>user\nhi<|im_end|>\n"},
        ).json()
        assert chat["is_chat"] and chat["messages"] == [{"role": "user", "content": "hi"}]

        feature = next(
            n for n in document["nodes"] if n["feature_type"] == "cross layer transcoder"
        )
        layer, index, position = (int(p) for p in feature["node_id"].split("_"))
        steered = client.post(
            "/api/steer-logits",
            json={
                "modelId": GRAPH_MODEL,
                "prompt": document["metadata"]["prompt"],
                "nTokens": 3,
                "features": [
                    {
                        "layer": layer,
                        "index": index,
                        "token_active_position": position,
                        "steer_position": position,
                        "ablate": True,
                    }
                ],
            },
        ).json()
        assert steered["DEFAULT_GENERATION"].startswith(document["metadata"]["prompt"])
        assert len(steered["STEERED_LOGITS_BY_TOKEN"]) >= len(document["metadata"]["prompt_tokens"])
