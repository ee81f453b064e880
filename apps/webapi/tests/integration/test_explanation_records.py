"""Explanations as records: new, get, vote/unvote (ordering), delete (author or admin),
export; with anonymous, other-user and bad-input answers, and nothing half-written."""

from sqlalchemy import func, select

from interpedia_db.models import Explanation, ExplanationVote

MODEL, SOURCE = "webapi-test", "6-res-jb"
INDEX = 11


async def _new(client, key: str, text: str, index: int = INDEX):
    return await client.post(
        "/api/explanation/new",
        headers={"x-api-key": key},
        json={
            "feature": {"modelId": MODEL, "layer": SOURCE, "index": str(index), "explanation": text}
        },
    )


async def test_write_vote_order_and_delete_with_permissions(api, seeded, db_sessionmaker) -> None:
    client, _ = api
    alice, bob, admin = seeded["alice"], seeded["bob"], seeded["admin"]
    anonymous = await client.post(
        "/api/explanation/new",
        json={"feature": {"modelId": MODEL, "layer": SOURCE, "index": INDEX, "explanation": "x"}},
    )
    assert anonymous.status_code == 401

    made = await _new(client, alice, "  mentions of felines  ")
    assert made.status_code == 200, made.text
    mine = made.json()["explanation"]
    assert mine["description"] == "mentions of felines"
    assert mine["typeName"] == "human" and mine["voteCount"] == 0
    assert made.json()["url"] == f"/{MODEL}/{SOURCE}/{INDEX}"
    second = (await _new(client, bob, "words about cats")).json()["explanation"]

    got = await client.get(f"/api/explanation/{mine['id']}")
    assert got.status_code == 200 and got.json()["description"] == "mentions of felines"

    # Votes: once per person, shown, and used to order the feature's explanations.
    for key in (alice, bob, bob):
        voted = await client.post(
            f"/api/explanation/{second['id']}/vote", headers={"x-api-key": key}
        )
        assert voted.status_code == 200, voted.text
    assert (await client.post(f"/api/explanation/{second['id']}/vote")).status_code == 401
    feature = (await client.get(f"/api/feature/{MODEL}/{SOURCE}/{INDEX}")).json()
    ours = [e for e in feature["explanations"] if e["id"] in (mine["id"], second["id"])]
    assert [e["id"] for e in ours] == [second["id"], mine["id"]]
    assert ours[0]["voteCount"] == 2
    unvoted = await client.post(
        f"/api/explanation/{second['id']}/unvote", headers={"x-api-key": bob}
    )
    assert unvoted.status_code == 200 and unvoted.json()["explanationId"] == second["id"]
    again = await client.post(f"/api/explanation/{second['id']}/unvote", headers={"x-api-key": bob})
    assert again.status_code == 404 and "not voted" in again.json()["detail"]
    assert (await client.get(f"/api/explanation/{second['id']}")).json()["voteCount"] == 1

    # Delete: not by another user (403), not anonymously (401); by the author or an admin.
    stolen = await client.post(f"/api/explanation/{mine['id']}/delete", headers={"x-api-key": bob})
    assert stolen.status_code == 403 and "creator" in stolen.json()["detail"]
    assert (await client.post(f"/api/explanation/{mine['id']}/delete")).status_code == 401
    assert (await client.get(f"/api/explanation/{mine['id']}")).status_code == 200
    own = await client.post(f"/api/explanation/{mine['id']}/delete", headers={"x-api-key": alice})
    assert own.status_code == 200
    assert (await client.get(f"/api/explanation/{mine['id']}")).status_code == 404
    by_admin = await client.post(
        f"/api/explanation/{second['id']}/delete", headers={"x-api-key": admin}
    )
    assert by_admin.status_code == 200
    async with db_sessionmaker() as session:
        left = await session.scalar(
            select(func.count(ExplanationVote.id)).where(
                ExplanationVote.explanation_id == int(second["id"])
            )
        )
    assert left == 0  # its votes went with it


async def test_bad_input_is_4xx_and_writes_nothing(api, seeded, db_sessionmaker) -> None:
    client, _ = api
    alice = seeded["alice"]

    async def count() -> int:
        async with db_sessionmaker() as session:
            return await session.scalar(select(func.count(Explanation.id)))

    before = await count()
    blank = await _new(client, alice, "   ")
    assert blank.status_code == 422
    missing = await _new(client, alice, "cats", index=10**6)
    assert missing.status_code == 404 and "no feature" in missing.json()["detail"]
    too_long = await _new(client, alice, "x" * 2001)
    assert too_long.status_code == 422
    assert await count() == before
    for path in ("abc", "0", "99999999999"):
        answer = await client.get(f"/api/explanation/{path}")
        assert answer.status_code in (400, 404), (path, answer.text)
    bad_vote = await client.post("/api/explanation/99999999/vote", headers={"x-api-key": alice})
    assert bad_vote.status_code == 404


async def test_export_pages_through_a_sources_explanations(api, seeded) -> None:
    client, _ = api
    first = await client.get(
        "/api/explanation/export", params={"modelId": MODEL, "layer": SOURCE, "limit": 5}
    )
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["explanations"]) == 5 and page["total"] >= 5
    assert all(e["modelId"] == MODEL and e["layer"] == SOURCE for e in page["explanations"])
    ids = [int(e["id"]) for e in page["explanations"]]
    assert ids == sorted(ids)
    nxt = await client.get(
        "/api/explanation/export",
        params={"modelId": MODEL, "layer": SOURCE, "limit": 5, "offset": page["nextOffset"]},
    )
    assert int(nxt.json()["explanations"][0]["id"]) > ids[-1]
    assert (
        await client.get("/api/explanation/export", params={"modelId": MODEL, "limit": 0})
    ).status_code == 422
