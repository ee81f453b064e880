"""The collaboration pages in headless Chromium: comments and the bookmark button on
feature and list pages, the vector manager, "my stuff", and a steering run reopened from
its share link. What a person sees is asserted (and screenshotted), not only the DOM.
"""

from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.browser
MODEL, SOURCE = "webapi-test", "6-res-jb"
SERVED_MODEL, SERVED_D_MODEL = "smollm2-135m", 576

if not Path("/usr/bin/chromium").exists():
    pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)", allow_module_level=True)


def _as(page, key: str) -> None:
    page.evaluate("key => localStorage.setItem('interpedia-key', key)", key)


def test_comment_and_bookmark_a_feature(page, seeded, shots: Path) -> None:
    from playwright.sync_api import expect

    page.goto(f"/{MODEL}/{SOURCE}/21")
    _as(page, seeded["alice"])
    page.reload()
    page.fill(".comment-input", "hi")  # too short: the server's message shows
    page.click(".comment-form button")
    expect(page.locator(".comment-error")).to_contain_text("5 to 1,024 characters")
    page.fill(".comment-input", "Fires on cat names in titles")
    page.click(".comment-form button")
    comment = page.locator(".comment", has_text="Fires on cat names in titles")
    expect(comment).to_contain_text("alice")

    expect(page.locator("#bookmark")).to_have_text("☆ Bookmark")
    page.click("#bookmark")
    expect(page.locator("#bookmark")).to_have_text("★ Bookmarked")
    page.reload()  # the state comes from the server
    expect(page.locator("#bookmark")).to_have_text("★ Bookmarked")
    page.screenshot(path=str(shots / "feature-comments.png"), full_page=True)

    _as(page, seeded["bob"])  # another person may not delete it
    page.reload()
    expect(page.locator("#bookmark")).to_have_text("☆ Bookmark")  # Alice's, not Bob's
    page.locator(".comment", has_text="Fires on cat names").locator(".comment-delete").click()
    expect(page.locator(".comment-error")).to_contain_text("only the comment's author")
    _as(page, seeded["alice"])
    page.reload()
    page.locator(".comment", has_text="Fires on cat names").locator(".comment-delete").click()
    expect(page.locator(".comment", has_text="Fires on cat names")).to_have_count(0)


def test_comment_on_a_list(page, live_server, seeded, shots: Path) -> None:
    from playwright.sync_api import expect

    made = httpx.post(
        f"{live_server.url}/api/list/new-with-features",
        json={
            "name": "Discussed list",
            "features": [{"modelId": MODEL, "layer": SOURCE, "index": 4}],
        },
        headers={"x-api-key": seeded["alice"]},
        timeout=30,
    )
    assert made.status_code == 200, made.text
    page.goto(made.json()["url"])
    _as(page, seeded["alice"])  # the owner renames it and notes a feature
    page.fill("#edit-name", "Discussed list, renamed")
    page.fill("#edit-test-text", "my cat")
    page.click("#list-edit button")
    expect(page.locator("h1")).to_have_text("Discussed list, renamed")
    expect(page.locator("#edit-test-text")).to_have_value("my cat")
    page.fill("tr.list-item .note", "the main one")
    with page.expect_navigation():  # saved, the page reloads from the server
        page.click("tr.list-item .save-note")
    expect(page.locator("tr.list-item .note")).to_have_value("the main one")

    _as(page, seeded["bob"])  # another person comments, but may not edit
    page.reload()
    page.fill("tr.list-item .note", "bob's note")
    page.click("tr.list-item .save-note")
    expect(page.locator("#add-error")).to_contain_text("only the list's creator")
    page.fill(".comment-input", "Could add feature 5 too")
    page.click(".comment-form button")
    expect(page.locator(".comment")).to_contain_text("Could add feature 5 too")
    expect(page.locator(".comment .by")).to_contain_text("bob")
    expect(page.locator("tr.list-item")).to_have_count(1)
    expect(page.locator("tr.list-item .note")).to_have_value("the main one")
    page.screenshot(path=str(shots / "list-comments.png"), full_page=True)


def test_vector_manager_makes_steers_and_deletes(page, seeded, shots: Path) -> None:
    from playwright.sync_api import expect

    page.goto("/vectors")
    _as(page, seeded["alice"])
    page.reload()
    page.select_option("#vector-model", SERVED_MODEL)
    page.fill("#vector-layer", "3")
    page.fill("#vector-label", "manager vector")
    page.fill("#vector-values", ", ".join(["0.25"] * 10))
    expect(page.locator("#vector-count")).to_contain_text("10 values")
    page.click("#vector-new button[type=submit]")
    expect(page.locator("#vector-error")).to_contain_text(f"dimension {SERVED_D_MODEL}")
    expect(page.locator("tr.vector-row[data-label='manager vector']")).to_have_count(0)

    page.fill("#vector-values", "[" + ", ".join(["0.25"] * SERVED_D_MODEL) + "]")
    page.fill("#vector-strength", "6")
    page.click("#vector-new button[type=submit]")
    row = page.locator("tr.vector-row[data-label='manager vector']")
    expect(row).to_contain_text("blocks.3.hook_resid_pre")
    expect(row).to_contain_text(str(SERVED_D_MODEL))
    page.screenshot(path=str(shots / "vectors.png"), full_page=True)
    steer = row.get_by_text("steer with this vector →")
    assert "strength=6" in (steer.get_attribute("href") or "")
    steer.click()
    expect(page.locator(".feature-row")).to_have_count(1)
    expect(page.locator(".feature-row input")).to_have_value("6")

    page.goto("/vectors")
    row = page.locator("tr.vector-row[data-label='manager vector']")
    row.locator(".vector-delete").click()
    expect(row).to_have_count(0)


def test_my_stuff_and_a_shared_steering_run(page, live_server, seeded, shots: Path) -> None:
    from playwright.sync_api import expect

    alice = {"x-api-key": seeded["alice"]}
    with httpx.Client(base_url=live_server.url, headers=alice, timeout=120) as api:
        assert api.post(
            "/api/bookmark/add", json={"modelId": MODEL, "layer": SOURCE, "index": 33}
        ).is_success
        assert api.post("/api/list/new", json={"name": "Alice's own list"}).is_success
        run = api.post(
            "/api/steer",
            json={
                "modelId": SERVED_MODEL,
                "prompt": "The weather today",
                "features": [
                    {"modelId": SERVED_MODEL, "layer": "6-res-it", "index": 3, "strength": 5}
                ],
                "n_tokens": 4,
            },
        )
        assert run.status_code == 200, run.text
    run_id = run.json()["id"]

    page.goto("/my")
    expect(page.locator("#my-need-key")).to_be_visible()
    _as(page, seeded["alice"])
    page.reload()
    expect(page.locator("#my-lists")).to_contain_text("Alice's own list")
    expect(page.locator("#my-bookmarks")).to_contain_text(f"{MODEL}/{SOURCE}/33")
    expect(page.locator("#my-steers")).to_contain_text("The weather today")
    page.screenshot(path=str(shots / "my-stuff.png"), full_page=True)

    page.locator("#my-steers a", has_text="The weather today").first.click()
    expect(page).to_have_url(f"{live_server.url}/steer/{run_id}")
    expect(page.locator("#prompt")).to_have_value("The weather today")
    expect(page.locator(".feature-row")).to_contain_text("6-res-it/3")
    expect(page.locator("#n-tokens")).to_have_value("4")
    assert page.locator("#out-steered").inner_text() == run.json()["STEERED"]
    expect(page.locator("#steer-share a")).to_have_attribute("href", f"/steer/{run_id}")
    page.screenshot(path=str(shots / "steer-shared.png"), full_page=True)


def test_upload_form_lists_bad_rows_then_stores_a_good_file(
    page, live_server, seeded, tmp_path: Path, shots: Path
) -> None:
    import json

    from playwright.sync_api import expect

    alice = {"x-api-key": seeded["alice"]}
    with httpx.Client(base_url=live_server.url, headers=alice, timeout=60) as api:
        assert api.post("/api/model/new", json={"id": "upload-page-model", "layers": 2}).is_success
        made = api.post(
            "/api/source-set/new", json={"modelId": "upload-page-model", "name": "page-res"}
        )
        assert made.is_success, made.text

    def feature(i: int, values: list[float]) -> dict:
        return {"index": i, "activations": [{"tokens": [" a", " b", " c"], "values": values}]}

    body = {"modelId": "upload-page-model", "source": "0-page-res"}
    wrong_pairs = tmp_path / "pairs.json"  # the server refuses the row, by its place
    wrong_pairs.write_text(
        json.dumps(body | {"features": [feature(0, [1, 2, 3]), feature(1, [1, 2])]})
    )
    wrong_types = tmp_path / "types.json"  # two rows that do not fit the schema
    wrong_types.write_text(
        json.dumps(body | {"features": [feature(0, ["x", 2, 3]), feature(1, [1, 2, "y"])]})
    )
    good = tmp_path / "good.json"
    good.write_text(json.dumps(body | {"features": [feature(0, [1, 2, 3]), feature(1, [0, 4, 1])]}))

    page.goto("/upload")
    _as(page, seeded["alice"])
    page.set_input_files("#upload-file", str(wrong_pairs))
    page.click("#upload-form button")
    expect(page.locator("#upload-error")).to_contain_text("Nothing was stored")
    expect(page.locator(".upload-row-error")).to_have_count(1)
    expect(page.locator(".upload-row-error b")).to_have_text("features[1].activations[0]")
    expect(page.locator(".upload-row-error")).to_contain_text("3 tokens but 2 values")

    page.set_input_files("#upload-file", str(wrong_types))
    page.click("#upload-form button")
    expect(page.locator("#upload-error")).to_contain_text("2 problem(s)")
    rows = page.locator(".upload-row-error b")
    expect(rows).to_have_count(2)
    assert rows.nth(0).inner_text().startswith("features[0].activations[0].values[0]")
    assert rows.nth(1).inner_text().startswith("features[1].activations[0].values[2]")
    page.screenshot(path=str(shots / "upload-errors.png"), full_page=True)

    page.set_input_files("#upload-file", str(good))
    page.click("#upload-form button")
    expect(page.locator("#upload-result")).to_contain_text("Stored 2 rows from good.json")
    expect(page.locator(".upload-row-error")).to_have_count(0)
    assert httpx.get(f"{live_server.url}/api/feature/upload-page-model/0-page-res/1").is_success
