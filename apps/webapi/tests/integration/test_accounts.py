"""Accounts over HTTP: sign up, in and out with a password (a session cookie), CSRF on the
cookie's writes, API keys still working for scripts, admins disabling users, and bad input
answered with a 4xx that says what is wrong."""

import uuid

import httpx
from conftest import in_process

PASSWORD = "correct horse battery"


def _name(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def _csrf(client: httpx.AsyncClient) -> dict[str, str]:
    return {"x-csrf-token": client.cookies["interpedia_csrf"]}


async def test_sign_up_in_out_with_a_cookie_and_csrf(api, seeded) -> None:
    client, _ = api
    name = _name("carol")
    made = await client.post("/api/account/signup", json={"name": name, "password": PASSWORD})
    assert made.status_code == 200, made.text
    assert made.json()["name"] == name and made.json()["canSignIn"] is True
    cookie = made.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookie if c.startswith("interpedia_session="))
    assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie
    assert "HttpOnly" not in next(c for c in cookie if c.startswith("interpedia_csrf="))
    assert (await client.get("/api/me")).json()["name"] == name

    # A cookie alone (what another site's form would send) writes nothing.
    forged = await client.post("/api/list/new", json={"name": "forged"})
    assert forged.status_code == 403 and "x-csrf-token" in forged.json()["detail"]
    wrong = await client.post("/api/list/new", json={"name": "x"}, headers={"x-csrf-token": "no"})
    assert wrong.status_code == 403
    made_list = await client.post("/api/list/new", json={"name": "mine"}, headers=_csrf(client))
    assert made_list.status_code == 200
    mine = await client.post("/api/list/list", headers=_csrf(client))
    assert [x["name"] for x in mine.json()] == ["mine"]

    # An API key needs no CSRF token, and wins over the cookie.
    alice = await client.get("/api/me", headers={"x-api-key": seeded["alice"]})
    assert alice.json()["name"] == "alice"

    # Keys made while signed in work for scripts.
    key = (await client.post("/api/me/keys", headers=_csrf(client))).json()["apiKey"]
    by_key = await client.get("/api/me", headers={"x-api-key": key}, cookies={})
    assert by_key.json()["name"] == name

    out = await client.post("/api/account/signout", headers=_csrf(client))
    assert out.status_code == 200
    assert (await client.get("/api/me")).status_code == 401
    # The old cookie is dead on the server too, not only forgotten by this browser.
    signed_in = await client.post("/api/account/signin", json={"name": name, "password": PASSWORD})
    assert signed_in.status_code == 200
    token = client.cookies["interpedia_session"]
    await client.post("/api/account/signout", headers=_csrf(client))
    replay = await client.get("/api/me", cookies={"interpedia_session": token})
    assert replay.status_code == 401


async def test_bad_sign_up_and_sign_in_get_a_4xx_with_a_message(api) -> None:
    client, _ = api
    name = _name("dave")
    assert (
        await client.post("/api/account/signup", json={"name": name, "password": PASSWORD})
    ).status_code == 200
    client.cookies.clear()
    cases = [
        ({"name": name, "password": PASSWORD}, 409, "exists"),
        ({"name": _name("e"), "password": "short"}, 400, "at least 8"),
        ({"name": _name("e"), "password": ""}, 400, "at least 8"),
        ({"name": _name("e"), "password": "aaaaaaaaaaaa"}, 400, "too easy"),
        ({"name": "", "password": PASSWORD}, 422, ""),
    ]
    for body, status, words in cases:
        answer = await client.post("/api/account/signup", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert words in str(answer.json()["detail"])
    wrong = await client.post("/api/account/signin", json={"name": name, "password": "nope-nope"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "wrong user name or password"
    nobody = await client.post("/api/account/signin", json={"name": _name("x"), "password": "p"})
    assert nobody.status_code == 401 and nobody.json()["detail"] == wrong.json()["detail"]
    assert "interpedia_session" not in client.cookies


async def test_sign_in_attempts_are_rate_limited(api) -> None:
    client, _ = api
    name = _name("guessed")
    answers = [
        (await client.post("/api/account/signin", json={"name": name, "password": f"guess{i}"}))
        for i in range(7)
    ]
    assert [a.status_code for a in answers[:5]] == [401] * 5
    assert answers[-1].status_code == 429 and "try again" in answers[-1].json()["detail"]


async def test_password_change_and_profile(api) -> None:
    client, _ = api
    name = _name("frank")
    await client.post("/api/account/signup", json={"name": name, "password": PASSWORD})
    profile = await client.post(
        "/api/me/profile", json={"displayName": "Frank F."}, headers=_csrf(client)
    )
    assert profile.json()["displayName"] == "Frank F."
    bad = await client.post(
        "/api/me/password",
        json={"currentPassword": "wrong-one!", "newPassword": "another good one"},
        headers=_csrf(client),
    )
    assert bad.status_code == 401 and "current password" in bad.json()["detail"]
    changed = await client.post(
        "/api/me/password",
        json={"currentPassword": PASSWORD, "newPassword": "another good one"},
        headers=_csrf(client),
    )
    assert changed.status_code == 200
    assert (await client.get("/api/me")).json()["name"] == name  # this browser stays in
    client.cookies.clear()
    old = await client.post("/api/account/signin", json={"name": name, "password": PASSWORD})
    assert old.status_code == 401
    new = await client.post(
        "/api/account/signin", json={"name": name, "password": "another good one"}
    )
    assert new.status_code == 200


async def test_an_admin_disables_a_user_and_their_keys_and_sessions_stop(api, seeded) -> None:
    client, _ = api
    admin = {"x-api-key": seeded["admin"]}
    name = _name("gina")
    user = (
        await client.post("/api/account/signup", json={"name": name, "password": PASSWORD})
    ).json()
    key = (await client.post("/api/me/keys", headers=_csrf(client))).json()["apiKey"]

    refused = await client.post(
        f"/api/admin/users/{user['id']}", json={"disabled": True}, headers={"x-api-key": key}
    )
    assert refused.status_code == 403
    promoted = await client.post(
        f"/api/admin/users/{user['id']}", json={"isAdmin": True}, headers=admin
    )
    assert promoted.json()["isAdmin"] is True
    listed = (await client.get("/api/admin/users", headers={"x-api-key": key})).json()
    assert name in [u["name"] for u in listed]
    disabled = await client.post(
        f"/api/admin/users/{user['id']}", json={"disabled": True, "isAdmin": False}, headers=admin
    )
    assert disabled.json()["disabled"] is True and disabled.json()["isAdmin"] is False

    assert (await client.get("/api/me", headers={"x-api-key": key})).status_code == 401
    assert (await client.get("/api/me")).status_code == 401  # the cookie signs nobody in
    client.cookies.clear()
    again = await client.post("/api/account/signin", json={"name": name, "password": PASSWORD})
    assert again.status_code == 403 and "disabled" in again.json()["detail"]

    me = (await client.get("/api/me", headers=admin)).json()
    self_demote = await client.post(
        f"/api/admin/users/{me['id']}", json={"isAdmin": False}, headers=admin
    )
    assert self_demote.status_code == 400
    enabled = await client.post(
        f"/api/admin/users/{user['id']}", json={"disabled": False}, headers=admin
    )
    assert enabled.json()["disabled"] is False
    assert (await client.get("/api/me", headers={"x-api-key": key})).status_code == 200


async def test_sign_up_can_be_closed(seeded, db_sessionmaker, tmp_path) -> None:
    async with in_process(db_sessionmaker, tmp_path, allow_signup=False) as (client, _):
        closed = await client.post(
            "/api/account/signup", json={"name": _name("h"), "password": PASSWORD}
        )
        assert closed.status_code == 403 and "closed" in closed.json()["detail"]
