"""Bring your own model and SAEs: register a model and a source set, upload features and
streamed activations into it; bad rows, oversize uploads and others' sets are refused with
nothing written."""

import json

import pytest
from sqlalchemy import func, select

from interpedia_db.models import Activation, Feature
from interpedia_webapi import uploads


def _rows(n: int, width: int = 8) -> list[dict[str, object]]:
    return [
        {
            "tokens": [f" t{i}-{k}" for k in range(width)],
            "values": [float(k + i % 5) for k in range(width)],
        }
        for i in range(n)
    ]


async def _count(db_sessionmaker, model_id: str, source_id: str) -> int:
    async with db_sessionmaker() as session:
        return await session.scalar(
            select(func.count()).where(
                Activation.model_id == model_id, Activation.source_id == source_id
            )
        )


async def _own_set(client, headers, model_id: str, set_name: str = "lab-res") -> dict:
    made = await client.post(
        "/api/model/new",
        json={
            "id": model_id,
            "layers": 3,
            "displayName": "Lab model",
            "url": "https://lab.example",
        },
        headers=headers,
    )
    assert made.status_code == 200, made.text
    assert made.json()["website"] == "https://lab.example" and made.json()["layers"] == 3
    new_set = await client.post(
        "/api/source-set/new",
        json={"modelId": model_id, "name": set_name, "description": "our SAEs"},
        headers=headers,
    )
    assert new_set.status_code == 200, new_set.text
    return new_set.json()


async def test_a_lab_brings_its_model_sae_features_and_activations(
    api, seeded, db_sessionmaker
) -> None:
    client, _ = api
    alice = {"x-api-key": seeded["alice"]}
    source_set = await _own_set(client, alice, "lab-model-a")
    assert [s["id"] for s in source_set["sources"]] == ["0-lab-res", "1-lab-res", "2-lab-res"]
    got = await client.get("/api/source-set/lab-model-a/lab-res")
    assert got.status_code == 200 and got.json()["description"] == "our SAEs"
    assert (await client.get("/api/source-set/lab-model-a/nope")).status_code == 404

    features = {
        "modelId": "lab-model-a",
        "source": "1-lab-res",
        "features": [
            {
                "index": i,
                "density": 0.01 * (i + 1),
                "activations": _rows(3),
                "explanations": [{"text": f"lab words {i}", "methodName": "sae-dashboard"}],
                "topLogits": [{"token": " up", "value": 1.5}],
                "bottomLogits": [{"token": " down", "value": -0.5}],
            }
            for i in range(4)
        ],
    }
    uploaded = await client.post("/api/feature/upload-batch", json=features, headers=alice)
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["count"] == 4
    feature = (await client.get("/api/feature/lab-model-a/1-lab-res/2")).json()
    assert feature["explanations"][0]["description"] == "lab words 2"
    assert feature["pos_str"] == [" up"] and feature["neg_values"] == [-0.5]
    assert feature["frac_nonzero"] == pytest.approx(0.03)
    assert len(feature["activations"]) == 3
    again = await client.post("/api/feature/upload-batch", json=features, headers=alice)
    assert again.status_code == 409

    body = {
        "modelId": "lab-model-a",
        "source": "1-lab-res",
        "index": "2",
        "activations": _rows(5000),
    }
    streamed = await client.post(
        "/api/activation/upload-batch", content=json.dumps(body).encode(), headers=alice
    )
    assert streamed.status_code == 200, streamed.text
    assert streamed.json()["count"] == 5000
    assert await _count(db_sessionmaker, "lab-model-a", "1-lab-res") == 4 * 3 + 5000
    async with db_sessionmaker() as session:
        top = await session.get(Feature, ("lab-model-a", "1-lab-res", 2))
        assert top.max_act == pytest.approx(7 + 4)
    # A model registered without its dimension takes no vectors: they could not be checked.
    vector = await client.post(
        "/api/vector/new",
        json={
            "modelId": "lab-model-a",
            "layerNumber": 0,
            "hookType": "hook_resid_pre",
            "vector": [1.0] * 8,
            "vectorLabel": "unchecked",
        },
        headers=alice,
    )
    assert vector.status_code == 400 and "dimension is not known" in vector.json()["detail"]


async def test_uploads_are_refused_whole_when_bad_oversize_or_not_yours(
    api, seeded, db_sessionmaker, monkeypatch
) -> None:
    client, _ = api
    alice, bob = {"x-api-key": seeded["alice"]}, {"x-api-key": seeded["bob"]}
    await _own_set(client, alice, "lab-model-b")
    assert (
        await client.post("/api/model/new", json={"id": "anon-model", "layers": 1})
    ).status_code == 401
    dup = await client.post("/api/model/new", json={"id": "lab-model-b", "layers": 1}, headers=bob)
    assert dup.status_code == 409
    bad_id = await client.post("/api/model/new", json={"id": "Bad--Id", "layers": 1}, headers=bob)
    assert bad_id.status_code == 400 and "lowercase" in bad_id.json()["detail"]
    dup_set = await client.post(
        "/api/source-set/new", json={"modelId": "lab-model-b", "name": "lab-res"}, headers=bob
    )
    assert dup_set.status_code == 409
    one = {"modelId": "lab-model-b", "source": "0-lab-res", "features": [{"index": 0}]}
    assert (
        await client.post("/api/feature/upload-batch", json=one, headers=alice)
    ).status_code == 200

    # Bob may not upload into Alice's set.
    others = await client.post(
        "/api/feature/upload-batch", json=one | {"features": [{"index": 1}]}, headers=bob
    )
    assert others.status_code == 403
    rows = {"modelId": "lab-model-b", "source": "0-lab-res", "index": 0, "activations": _rows(3)}
    refused = await client.post("/api/activation/upload-batch", json=rows, headers=bob)
    assert refused.status_code == 403
    assert (await client.post("/api/activation/upload-batch", json=rows)).status_code == 401

    # A malformed row deep in the upload: its number is named, and nothing is kept.
    broken = _rows(3000)
    broken[2500] = {"tokens": ["a", "b"], "values": [1.0]}
    bad = await client.post(
        "/api/activation/upload-batch", json=rows | {"activations": broken}, headers=alice
    )
    assert bad.status_code == 400 and "activations[2500]" in bad.json()["detail"]
    not_numbers = _rows(10)
    not_numbers[7] = {"tokens": ["a"], "values": ["x"]}
    bad = await client.post(
        "/api/activation/upload-batch", json=rows | {"activations": not_numbers}, headers=alice
    )
    assert bad.status_code == 400 and "activations[7]" in bad.json()["detail"]
    not_strings = _rows(10)
    not_strings[3] = {"tokens": ["a", 5], "values": [1.0, 2.0]}
    bad = await client.post(
        "/api/activation/upload-batch", json=rows | {"activations": not_strings}, headers=alice
    )
    assert bad.status_code == 400 and "activations[3]: tokens" in bad.json()["detail"]
    nul = _rows(10)
    nul[4] = {"tokens": ["a\u0000"], "values": [1.0]}
    bad = await client.post(
        "/api/activation/upload-batch", json=rows | {"activations": nul}, headers=alice
    )
    assert bad.status_code == 400 and "activations[4]" in bad.json()["detail"]
    truncated = json.dumps(rows)[:-20].encode()
    bad = await client.post("/api/activation/upload-batch", content=truncated, headers=alice)
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["detail"]
    assert await _count(db_sessionmaker, "lab-model-b", "0-lab-res") == 0

    # Oversize: more rows, or more bytes, than the limits say.
    monkeypatch.setattr(uploads, "MAX_UPLOAD_ACTIVATIONS", 2500)
    big = await client.post(
        "/api/activation/upload-batch", json=rows | {"activations": _rows(3000)}, headers=alice
    )
    assert big.status_code == 400 and "at most 2,500 activations" in big.json()["detail"]
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 10_000)
    big = await client.post(
        "/api/activation/upload-batch", json=rows | {"activations": _rows(300)}, headers=alice
    )
    assert big.status_code == 400 and "at most 10,000 bytes" in big.json()["detail"]
    assert await _count(db_sessionmaker, "lab-model-b", "0-lab-res") == 0
    # A bad feature row rolls back the whole batch.
    batch = {
        "modelId": "lab-model-b",
        "source": "0-lab-res",
        "features": [
            {"index": 5, "activations": _rows(2)},
            {"index": 6, "activations": [{"tokens": ["a"], "values": [1.0, 2.0]}]},
        ],
    }
    bad = await client.post("/api/feature/upload-batch", json=batch, headers=alice)
    assert bad.status_code == 400 and "features[1].activations[0]" in bad.json()["detail"]
    assert (await client.get("/api/feature/lab-model-b/0-lab-res/5")).status_code == 404


async def test_a_vector_takes_activations_from_its_creator_only(api, seeded) -> None:
    from conftest import SERVED_D_MODEL, SERVED_MODEL

    client, _ = api
    alice, bob = {"x-api-key": seeded["alice"]}, {"x-api-key": seeded["bob"]}
    made = await client.post(
        "/api/vector/new",
        json={
            "modelId": SERVED_MODEL,
            "layerNumber": 3,
            "hookType": "hook_resid_pre",
            "vector": [0.0] * SERVED_D_MODEL,
            "vectorLabel": "uploads test",
        },
        headers=alice,
    )
    vector = made.json()["vector"]
    rows = {
        "modelId": SERVED_MODEL,
        "source": vector["source"],
        "index": vector["index"],
        "activations": _rows(4),
    }
    assert (
        await client.post("/api/activation/upload-batch", json=rows, headers=bob)
    ).status_code == 403
    ok = await client.post("/api/activation/upload-batch", json=rows, headers=alice)
    assert ok.status_code == 200 and ok.json()["count"] == 4
    feature = (
        await client.get(f"/api/feature/{SERVED_MODEL}/{vector['source']}/{vector['index']}")
    ).json()
    assert len(feature["activations"]) == 4


async def test_admins_add_releases_and_single_sources(api, seeded) -> None:
    client, _ = api
    admin, alice = {"x-api-key": seeded["admin"]}, {"x-api-key": seeded["alice"]}
    await _own_set(client, alice, "lab-model-c")
    release = {"name": "lab-release", "description": "our release", "urls": ["https://x.example"]}
    assert (
        await client.post("/api/source-release/new", json=release, headers=alice)
    ).status_code == 403
    made = await client.post("/api/source-release/new", json=release, headers=admin)
    assert made.status_code == 200 and made.json()["urls"] == ["https://x.example"]
    again = await client.post("/api/source-release/new", json=release, headers=admin)
    assert again.status_code == 409
    source = {
        "modelId": "lab-model-c",
        "id": "7-lab-res",
        "setName": "lab-res",
        "saelensConfig": {"d_sae": 4096, "hook_name": "blocks.7.hook_resid_post"},
    }
    assert (await client.post("/api/source/new", json=source, headers=alice)).status_code == 403
    made = await client.post("/api/source/new", json=source, headers=admin)
    assert made.status_code == 200, made.text
    assert made.json()["layer"] == 7 and made.json()["d_sae"] == 4096
    assert made.json()["hookName"] == "blocks.7.hook_resid_post"
    sources = (await client.get("/api/source-set/lab-model-c/lab-res")).json()["sources"]
    assert "7-lab-res" in [s["id"] for s in sources]
    assert (await client.post("/api/source/new", json=source, headers=admin)).status_code == 409
    misnamed = await client.post("/api/source/new", json=source | {"id": "x-other"}, headers=admin)
    assert misnamed.status_code == 400 and "<layer>-lab-res" in misnamed.json()["detail"]
