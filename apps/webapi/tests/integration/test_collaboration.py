"""Collaboration (`/api/comment/*`, `/api/list/comment/*`, `/api/bookmark/*`,
`/api/user/bookmarks`, `list/update|edit-feature|new-with-features`, `steer-load`,
`steer/presets`) against real Postgres: who may write and delete, bad input refused with
a message and nothing half-written."""

from sqlalchemy import func, select

from interpedia_db.models import Bookmark, Comment, FeatureList, SteerCache

MODEL, SOURCE = "webapi-test", "6-res-jb"


def _keys(seeded) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    return (
        {"x-api-key": seeded["alice"]},
        {"x-api-key": seeded["bob"]},
        {"x-api-key": seeded["admin"]},
    )


async def test_feature_comments_are_written_read_and_deleted_by_their_author(api, seeded) -> None:
    client, _ = api
    alice, bob, admin = _keys(seeded)
    feature = {"modelId": MODEL, "layer": SOURCE, "index": "7"}
    made = await client.post(
        "/api/comment/new", json=feature | {"text": "  fires on cats  "}, headers=alice
    )
    assert made.status_code == 200, made.text
    comment = made.json()
    assert comment["text"] == "fires on cats" and comment["user"]["name"] == "alice"
    assert (comment["modelId"], comment["layer"], comment["index"]) == (MODEL, SOURCE, "7")
    second = await client.post(
        "/api/comment/new", json=feature | {"text": "and kittens"}, headers=bob
    )
    page = (await client.get(f"/api/feature/{MODEL}/{SOURCE}/7")).json()
    assert [c["text"] for c in page["comments"]][-2:] == ["fires on cats", "and kittens"]

    refused = await client.post("/api/comment/delete", json={"id": comment["id"]}, headers=bob)
    assert refused.status_code == 403 and "author" in refused.json()["detail"]
    anonymous = await client.post("/api/comment/delete", json={"id": comment["id"]})
    assert anonymous.status_code == 401
    ok = await client.post("/api/comment/delete", json={"id": comment["id"]}, headers=alice)
    assert ok.status_code == 200
    again = await client.post("/api/comment/delete", json={"id": comment["id"]}, headers=alice)
    assert again.status_code == 404
    by_admin = await client.post(
        "/api/comment/delete", json={"id": second.json()["id"]}, headers=admin
    )
    assert by_admin.status_code == 200
    page = (await client.get(f"/api/feature/{MODEL}/{SOURCE}/7")).json()
    assert {"fires on cats", "and kittens"}.isdisjoint(c["text"] for c in page["comments"])


async def test_bad_comments_are_refused_and_nothing_is_stored(api, seeded, db_sessionmaker) -> None:
    client, _ = api
    alice, _, _ = _keys(seeded)
    async with db_sessionmaker() as session:
        before = await session.scalar(select(func.count()).select_from(Comment))
    feature = {"modelId": MODEL, "layer": SOURCE, "index": "8"}
    anonymous = await client.post("/api/comment/new", json=feature | {"text": "hello there"})
    assert anonymous.status_code == 401
    short = await client.post("/api/comment/new", json=feature | {"text": " hi  "}, headers=alice)
    assert short.status_code == 400 and "5 to 1,024 characters" in short.json()["detail"]
    long = await client.post("/api/comment/new", json=feature | {"text": "x" * 1025}, headers=alice)
    assert long.status_code == 422
    nowhere = await client.post(
        "/api/comment/new", json=feature | {"index": "999", "text": "hello there"}, headers=alice
    )
    assert nowhere.status_code == 404 and f"{MODEL}/{SOURCE}/999" in nowhere.json()["detail"]
    bad_id = await client.post("/api/comment/delete", json={"id": "abc"}, headers=alice)
    assert bad_id.status_code == 422
    async with db_sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Comment)) == before


async def test_bookmarks_belong_to_their_owner(api, seeded, db_sessionmaker) -> None:
    client, _ = api
    alice, bob, _ = _keys(seeded)
    feature = {"modelId": MODEL, "layer": SOURCE, "index": 11}
    assert (await client.post("/api/bookmark/add", json=feature)).status_code == 401
    first = await client.post("/api/bookmark/add", json=feature, headers=alice)
    assert first.status_code == 200, first.text
    again = await client.post("/api/bookmark/add", json=feature, headers=alice)
    assert again.json()["id"] == first.json()["id"]  # adding twice keeps one
    mine = (await client.post("/api/user/bookmarks", headers=alice)).json()
    assert [(b["layer"], b["index"]) for b in mine if b["index"] == "11"] == [(SOURCE, "11")]
    assert all(
        b["index"] != "11" for b in (await client.post("/api/user/bookmarks", headers=bob)).json()
    )

    # Bob has no bookmark of it: deleting reaches only his own, so Alice's stays.
    refused = await client.post("/api/bookmark/delete", json=feature, headers=bob)
    assert refused.status_code == 404 and "you have no bookmark" in refused.json()["detail"]
    assert any(
        b["index"] == "11" for b in (await client.post("/api/user/bookmarks", headers=alice)).json()
    )
    nowhere = await client.post("/api/bookmark/add", json=feature | {"index": 999}, headers=alice)
    assert nowhere.status_code == 404
    ok = await client.post("/api/bookmark/delete", json=feature, headers=alice)
    assert ok.status_code == 200
    async with db_sessionmaker() as session:
        left = await session.scalar(
            select(func.count()).select_from(Bookmark).where(Bookmark.index == 11)
        )
    assert left == 0


async def test_lists_are_made_with_features_updated_edited_and_discussed(
    api, seeded, db_sessionmaker
) -> None:
    client, _ = api
    alice, bob, _ = _keys(seeded)
    features = [
        {"modelId": MODEL, "layer": SOURCE, "index": 1, "description": "one"},
        {"modelId": MODEL, "layer": SOURCE, "index": 2},
    ]
    made = await client.post(
        "/api/list/new-with-features",
        json={"name": "Pair", "description": "two", "testText": "cats", "features": features},
        headers=alice,
    )
    assert made.status_code == 200, made.text
    list_id = made.json()["id"]
    assert made.json()["defaultTestText"] == "cats"

    updated = await client.post(
        "/api/list/update",
        json={"listId": list_id, "name": " Renamed ", "description": "new"},
        headers=alice,
    )
    assert updated.status_code == 200
    assert updated.json()["name"] == "Renamed" and updated.json()["defaultTestText"] == "cats"
    edit = {"listId": list_id, "modelId": MODEL, "layer": SOURCE, "index": "2"}
    edited = await client.post(
        "/api/list/edit-feature", json=edit | {"description": "two!"}, headers=alice
    )
    assert edited.status_code == 200 and edited.json()["description"] == "two!"
    assert (
        await client.post("/api/list/update", json={"listId": list_id, "name": "x"}, headers=bob)
    ).status_code == 403
    assert (
        await client.post("/api/list/edit-feature", json=edit | {"description": "b"}, headers=bob)
    ).status_code == 403
    missing = await client.post(
        "/api/list/edit-feature", json=edit | {"index": "3", "description": "d"}, headers=alice
    )
    assert missing.status_code == 404 and "not in the list" in missing.json()["detail"]

    # Anyone with a key who can open the list may comment; only the author deletes.
    said = await client.post(
        "/api/list/comment/new", json={"listId": list_id, "text": "nice pair"}, headers=bob
    )
    assert said.status_code == 200, said.text
    short = await client.post(
        "/api/list/comment/new", json={"listId": list_id, "text": " x "}, headers=bob
    )
    assert short.status_code == 400 and "2 to 1,024" in short.json()["detail"]
    got = (await client.post("/api/list/get", json={"listId": list_id})).json()
    assert [n["description"] for n in got["neurons"]] == ["one", "two!"]
    assert [(c["text"], c["user"]["name"]) for c in got["comments"]] == [("nice pair", "bob")]
    comment_id = said.json()["id"]
    assert (
        await client.post("/api/list/comment/delete", json={"commentId": comment_id}, headers=alice)
    ).status_code == 403
    assert (
        await client.post("/api/list/comment/delete", json={"commentId": comment_id}, headers=bob)
    ).status_code == 200
    assert (await client.post("/api/list/get", json={"listId": list_id})).json()["comments"] == []


async def test_a_list_with_an_unknown_feature_is_not_made(api, seeded, db_sessionmaker) -> None:
    client, _ = api
    alice, _, _ = _keys(seeded)
    features = [
        {"modelId": MODEL, "layer": SOURCE, "index": 1},
        {"modelId": MODEL, "layer": SOURCE, "index": 999},
    ]
    refused = await client.post(
        "/api/list/new-with-features",
        json={"name": "Half-made list", "features": features},
        headers=alice,
    )
    assert refused.status_code == 404 and f"{SOURCE}/999" in refused.json()["detail"]
    anonymous = await client.post(
        "/api/list/new-with-features", json={"name": "Half-made list", "features": []}
    )
    assert anonymous.status_code == 401
    async with db_sessionmaker() as session:
        made = await session.scalar(
            select(func.count())
            .select_from(FeatureList)
            .where(FeatureList.name == "Half-made list")
        )
    assert made == 0


async def test_a_saved_run_loads_by_its_id_and_becomes_a_preset(
    api, seeded, db_sessionmaker
) -> None:
    """A run as the steer route stores it (the real steering is in test_real_services)."""
    from interpedia_webapi import accounts, steering

    client, _ = api
    alice, bob, _ = _keys(seeded)
    asked = {
        "modelId": MODEL,
        "prompt": "I think",
        "features": [{"modelId": MODEL, "layer": SOURCE, "index": "3", "strength": 7}],
    }
    request = {"model": MODEL, "prompt": "I think", "features": []}
    key = steering.cache_key("completion", request)
    async with db_sessionmaker.begin() as session:
        owner = await accounts.user_for_key(session, seeded["alice"])
        await steering.store(
            session,
            key,
            request,
            {"STEERED": "I think cats", "DEFAULT": "I think so"},
            asked,
            owner.id,
        )
    loaded = await client.post("/api/steer-load", json={"steerOutputId": key})
    assert loaded.status_code == 200, loaded.text
    run = loaded.json()
    assert run["STEERED"] == "I think cats" and run["DEFAULT"] == "I think so"
    assert run["kind"] == "completion" and run["inputText"] == "I think"
    assert run["shareUrl"] == f"/steer/{key}"
    assert run["request"]["features"][0]["strength"] == 7
    missing = await client.post("/api/steer-load", json={"steerOutputId": "nope"})
    assert missing.status_code == 404 and "no saved steering run" in missing.json()["detail"]

    presets = await client.post("/api/steer/presets", json={"modelId": MODEL}, headers=alice)
    assert presets.status_code == 200
    examples = [p for p in presets.json()["featurePresets"] if p["exampleSteerOutputId"] == key]
    assert examples and examples[0]["features"][0]["index"] == 3
    bobs = (await client.post("/api/steer/presets", json={"modelId": MODEL}, headers=bob)).json()
    assert all(p["exampleSteerOutputId"] != key for p in bobs["featurePresets"])
    unknown = await client.post("/api/steer/presets", json={"modelId": "no-such-model"})
    assert unknown.status_code == 404
    async with db_sessionmaker() as session:
        assert (await session.get(SteerCache, key)).creator_id is not None


async def test_admin_exports_stream_a_source_as_one_array(api, seeded) -> None:
    client, _ = api
    alice, _, admin = _keys(seeded)
    wanted = {"modelId": MODEL, "sourceId": SOURCE, "beginIndex": 5, "endIndex": 9}
    refused = await client.post("/api/admin/export-features", json=wanted, headers=alice)
    assert refused.status_code == 403
    assert (await client.post("/api/admin/export-features", json=wanted)).status_code == 401
    features = await client.post("/api/admin/export-features", json=wanted, headers=admin)
    assert features.status_code == 200, features.text
    rows = features.json()
    assert [r["index"] for r in rows] == ["5", "6", "7", "8", "9"]  # both ends included
    assert all(r["layer"] == SOURCE and r["activations"] for r in rows)
    backwards = await client.post(
        "/api/admin/export-features", json=wanted | {"beginIndex": 9, "endIndex": 5}, headers=admin
    )
    assert backwards.status_code == 400 and "endIndex" in backwards.json()["detail"]
    unknown = await client.post(
        "/api/admin/export-features", json=wanted | {"sourceId": "nope"}, headers=admin
    )
    assert unknown.status_code == 404 and "no source" in unknown.json()["detail"]
    empty = await client.post(
        "/api/admin/export-features",
        json=wanted | {"beginIndex": 500, "endIndex": 600},
        headers=admin,
    )
    assert empty.status_code == 200 and empty.json() == []

    every = await client.post(
        "/api/admin/export-explanations",
        json={"modelId": MODEL, "sourceId": SOURCE},
        headers=admin,
    )
    assert every.status_code == 200
    explanations = every.json()
    assert len(explanations) >= 40  # one per seeded feature, and any other tests added
    assert [int(e["id"]) for e in explanations] == sorted(int(e["id"]) for e in explanations)
    assert {"description", "typeName", "explanationModelName", "scores"} <= explanations[0].keys()
    three = await client.post(
        "/api/admin/export-explanations",
        json={"modelId": MODEL, "sourceId": SOURCE, "maxResults": 3},
        headers=admin,
    )
    assert [e["id"] for e in three.json()] == [e["id"] for e in explanations[:3]]
