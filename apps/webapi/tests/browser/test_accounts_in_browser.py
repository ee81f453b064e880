"""Accounts in headless Chromium: sign up, write on an existing page without pasting a key
(app.js sends the CSRF token), make an API key, sign out and in, a forged write refused
for its missing CSRF token, and an admin disabling the user on the users page."""

import uuid
from pathlib import Path

import pytest
from conftest import ADMIN_KEY

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"

if not Path("/usr/bin/chromium").exists():
    pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)", allow_module_level=True)


def _status(page, path: str, method: str = "GET", headers: dict | None = None) -> int:
    return page.evaluate(
        """([path, method, headers]) => fetch(path, {method, headers,
             body: method === "GET" ? undefined : JSON.stringify({name: "forged"})})
           .then(r => r.status)""",
        [path, method, headers or {"content-type": "application/json"}],
    )


def _sign(page, mode: str, name: str, password: str = PASSWORD) -> None:
    page.goto(f"/{mode}")
    page.fill("#sign-name", name)
    page.fill("#sign-password", password)
    page.click("#sign-form button[type=submit]")


def test_sign_up_write_sign_out_and_in(page, shots: Path) -> None:
    from playwright.sync_api import expect

    name = f"walt-{uuid.uuid4().hex[:6]}"
    _sign(page, "signup", name, "short")
    expect(page.locator("#sign-error")).to_contain_text("at least 8 characters")
    page.fill("#sign-password", PASSWORD)
    page.click("#sign-form button[type=submit]")
    expect(page.locator("#account-name")).to_have_text(name)
    expect(page.locator("#signout")).to_be_visible()
    page.screenshot(path=str(shots / "account.png"), full_page=True)

    # An existing page's form writes with the cookie: no key in the key box.
    page.goto("/lists")
    page.fill("#list-name", "walt's picks")
    page.select_option("#list-visibility", "PRIVATE")
    page.click("#new-list button[type=submit]")
    expect(page.locator("h1")).to_contain_text("walt's picks")
    # The same write without the CSRF header (what another site could make) is refused.
    assert _status(page, "/api/list/new", "POST") == 403

    page.goto("/account/keys")
    page.click("#key-create")
    expect(page.locator("#key-new")).to_contain_text("ip_")
    expect(page.locator(".key-row")).to_have_count(1)

    page.click("#signout")
    expect(page.locator("a[href='/signin']")).to_be_visible()
    assert _status(page, "/api/me") == 401
    page.goto("/lists")  # the private list is the owner's only
    expect(page.locator("main")).not_to_contain_text("walt's picks")
    _sign(page, "signin", name, "wrong password")
    expect(page.locator("#sign-error")).to_have_text("wrong user name or password")
    page.fill("#sign-password", PASSWORD)
    page.click("#sign-form button[type=submit]")
    expect(page.locator("#account-name")).to_have_text(name)
    page.goto("/lists")
    expect(page.locator("main")).to_contain_text("walt's picks")


def test_an_admin_disables_a_signed_in_user(browser, live_server, page, shots: Path) -> None:
    from playwright.sync_api import expect

    name = f"vera-{uuid.uuid4().hex[:6]}"
    _sign(page, "signup", name)
    expect(page.locator("#account-name")).to_have_text(name)

    admin = browser.new_context(base_url=live_server.url)
    try:
        admin_page = admin.new_page()
        admin_page.goto("/admin/users")
        expect(admin_page.locator("#users-error")).to_contain_text("sign in")
        admin_page.evaluate("key => localStorage.setItem('interpedia-key', key)", ADMIN_KEY)
        admin_page.goto("/admin/users")
        row = admin_page.locator(f".user-row[data-name='{name}']")
        expect(row).to_contain_text("active")
        row.get_by_role("button", name="Disable").click()
        expect(row).to_contain_text("disabled")
        admin_page.screenshot(path=str(shots / "admin-users.png"), full_page=True)
    finally:
        admin.close()

    page.goto("/account")
    expect(page.locator("main")).to_contain_text("You are not signed in")
    expect(page.locator("header a[href='/signin']")).to_be_visible()  # not "Sign out"
    assert _status(page, "/api/me") == 401
    _sign(page, "signin", name)
    expect(page.locator("#sign-error")).to_contain_text("disabled")
