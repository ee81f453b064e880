"""The pages in headless Chromium: browse, open a feature, test text, search, steer, lists, import.

The server runs on the real inference and autointerp services (the packaged model with a
random SAE, `smollm2-135m` / `6-res-it`). Needs Debian's chromium at /usr/bin/chromium
(`apt-get install -y chromium`); screenshots go to `artifacts/screenshots/`.
"""

import re
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
MODEL, SOURCE = "webapi-test", "6-res-jb"
SERVED_MODEL, SERVED_SOURCE = "smollm2-135m", "6-res-it"

if not Path("/usr/bin/chromium").exists():
    pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)", allow_module_level=True)


def _set_key(page, key: str) -> None:
    page.evaluate("key => localStorage.setItem('interpedia-key', key)", key)


def test_browse_to_a_feature_and_test_text(page, shots: Path) -> None:
    from playwright.sync_api import expect

    page.goto("/")
    expect(page.locator(f"section.model[data-model='{MODEL}']")).to_be_visible()
    page.screenshot(path=str(shots / "home.png"), full_page=True)
    page.click(f"a[href='/{MODEL}/{SOURCE}']")
    expect(page.locator("h1")).to_have_text(SOURCE)
    page.click(f"a[href='/{MODEL}/{SOURCE}/2']")
    expect(page.locator("#explanations")).to_contain_text("mentions of cats #2")
    tokens = page.locator("#top-activations .tok")
    assert tokens.count() == 16 * 1  # one top example (two bin examples are below)
    assert page.locator("#bin-activations .tokens").count() == 2
    hovered = tokens.first.get_attribute("data-v")
    assert hovered is not None and float(hovered) >= 0
    assert page.locator("svg.chart rect").count() == 40
    page.click(f"#similar a[href='/{MODEL}/{SOURCE}/3']")
    expect(page.locator("#feature-title")).to_contain_text(f"{SOURCE} · 3")

    # custom text runs on the inference service: a feature of the served model
    page.goto(f"/{SERVED_MODEL}/{SERVED_SOURCE}/5")
    page.fill("#custom-text", "my cat sleeps")
    page.click("#test-button")
    expect(page.locator("#custom-result .tok").first).to_be_visible()
    tokens = page.locator("#custom-result .tok").all()
    assert "".join(t.text_content() or "" for t in tokens).endswith("my cat sleeps")
    values = [float(t.get_attribute("data-v") or "nan") for t in tokens]
    assert all(v == v for v in values)  # a number on every token
    page.locator("#custom-result .tok").nth(1).hover()
    page.screenshot(path=str(shots / "feature.png"), full_page=True)


def test_search_explanations_and_via_inference(page, shots: Path) -> None:
    from playwright.sync_api import expect

    page.goto("/search")
    page.fill("#query", "cats")
    page.select_option("#search-mode", "keyword")
    page.click("#explanation-form button")
    results = page.locator("#explanation-results .result")
    expect(results.first).to_be_visible()
    expect(results.first).to_contain_text("cat")  # "cats", or "cat" from another suite's model
    # only served models are offered for running text (other suites' sets of the served
    # model share this database, so the served set is picked by name)
    offered = page.locator("#inference-set option").all_inner_texts()
    assert f"{SERVED_MODEL} · res-it" in offered
    assert all(o.startswith(f"{SERVED_MODEL} · ") for o in offered), offered
    page.select_option("#inference-set", f"{SERVED_MODEL}|res-it")
    page.fill("#inference-text", "a cat sat")
    page.click("#inference-form button")
    expect(page.locator("#inference-results .result").first).to_be_visible()
    assert page.locator("#inference-results .result .tok").count() >= 3
    page.screenshot(path=str(shots / "search.png"), full_page=True)
    results.first.locator("a").click()
    expect(page.locator("#explanations")).to_contain_text("cat")


def test_steer_streams_default_and_steered(page, shots: Path) -> None:
    """The texts grow in the page token by token while the model writes, not at the end."""
    from playwright.sync_api import expect

    page.goto(f"/steer?model={MODEL}&source={SOURCE}&index=4")
    # webapi-test is not served: the picker offers (and picked) the served model only
    assert page.locator("#steer-model option").all_inner_texts() == [SERVED_MODEL]
    page.goto(f"/steer?model={SERVED_MODEL}&source={SERVED_SOURCE}&index=4")
    expect(page.locator(".feature-row")).to_have_count(1)
    page.fill("#prompt", "In the garden")
    page.fill("#n-tokens", "12")
    page.fill("#seed", str(int(time.time())))  # never from the cache
    page.evaluate(
        """() => {
            window.steeredTexts = [];
            new MutationObserver(() => {
                window.steeredTexts.push(document.getElementById("out-steered").textContent);
            }).observe(document.getElementById("out-steered"), {childList: true, subtree: true,
                                                                characterData: true});
        }"""
    )
    page.click("#steer-button")
    expect(page.locator("#steer-status")).to_have_text("Done.", timeout=60_000)
    steered = page.locator("#out-steered").inner_text()
    assert steered.startswith("In the garden") and len(steered) > len("In the garden")
    assert page.locator("#out-default").inner_text().startswith("In the garden")
    seen = [t for t in page.evaluate("window.steeredTexts") if t]
    assert len(set(seen)) >= 6, seen  # one change per token or so, not one at the end
    page.screenshot(path=str(shots / "steer.png"), full_page=True)


def test_steer_method_picker_sends_projection_cap(page, shots: Path) -> None:
    """The method a person picks is the one the steered text is generated with."""
    from playwright.sync_api import expect

    page.goto(f"/steer?model={SERVED_MODEL}&source={SERVED_SOURCE}&index=4")
    methods = page.locator("#steer-method option")
    expect(methods).to_have_count(3)
    assert methods.evaluate_all("os => os.map(o => o.value)") == [
        "SIMPLE_ADDITIVE",
        "ORTHOGONAL_DECOMP",
        "PROJECTION_CAP",
    ]
    page.select_option("#steer-method", "PROJECTION_CAP")
    page.fill("#multiplier", "-1")
    page.fill("#prompt", "The river")
    page.fill("#n-tokens", "6")
    page.fill("#seed", str(int(time.time())))
    with page.expect_request(lambda r: r.url.endswith("/steer") and r.method == "POST") as sent:
        page.click("#steer-button")
    assert sent.value.post_data_json["steer_method"] == "PROJECTION_CAP"
    expect(page.locator("#steer-status")).to_have_text("Done.", timeout=60_000)
    expect(page.locator("#steer-error")).to_have_text("")
    steered = page.locator("#out-steered").inner_text()
    assert steered.startswith("The river") and len(steered) > len("The river")
    page.screenshot(path=str(shots / "steer-projection-cap.png"), full_page=True)


def test_lists_create_and_add(page, seeded, shots: Path) -> None:
    from playwright.sync_api import expect

    page.goto("/lists")
    _set_key(page, seeded["alice"])
    page.fill("#list-name", "Browser list")
    page.click("#new-list button")
    expect(page.locator("h1")).to_have_text("Browser list")
    page.fill("#add-model", MODEL)
    page.fill("#add-source", SOURCE)
    page.fill("#add-index", "5")
    page.click("#add-form button")
    expect(page.locator("tr.list-item")).to_have_count(1)
    expect(page.locator("tr.list-item")).to_contain_text("dogs running home #5")
    page.screenshot(path=str(shots / "list.png"), full_page=True)


def test_admin_import_with_live_progress_then_verify(
    page, seeded, tmp_path: Path, shots: Path
) -> None:
    from playwright.sync_api import expect
    from webapi_factories import write_export

    write_export(tmp_path / "exports", "browser-model", "3-res-ui", n_features=1100)
    page.goto("/admin")
    _set_key(page, seeded["alice"])
    page.reload()
    expect(page.locator("#admin-error")).to_contain_text("admin API key")
    _set_key(page, seeded["admin"])
    page.reload()
    page.fill("#discover-location", str(tmp_path / "exports"))
    page.click("#discover-form button")
    expect(page.locator(".available")).to_contain_text("browser-model / 3-res-ui")
    page.locator(".available button").click()
    row = page.locator("tr.import-row", has_text="browser-model / 3-res-ui")
    expect(row.locator(".pill")).to_have_text("complete", timeout=60_000)
    expect(row.locator(".files")).to_contain_text("11 / 11 files")
    row.locator("button.verify").click()
    expect(page.locator("#verify-report")).to_contain_text("verified, complete")
    page.screenshot(path=str(shots / "admin-import.png"), full_page=True)
    page.goto("/")
    expect(page.locator("section.model[data-model='browser-model']")).to_contain_text("1,100")


def _point_on_screen(page, index: int) -> tuple[float, float]:
    """Where feature `index` is drawn, in page coordinates."""
    box = page.locator("#feature-map").bounding_box()
    x, y = page.evaluate(
        """index => {
            const map = window.featureMap;
            const [px, py] = map.toScreen(map.index.indexOf(index));
            return [px / map.ratio, py / map.ratio];
        }""",
        index,
    )
    return box["x"] + x, box["y"] + y


def test_source_page_map_hover_click_select_and_search(page, explored, shots: Path) -> None:
    from playwright.sync_api import expect

    page.goto(f"/{MODEL}/{SOURCE}")
    page.wait_for_function("window.featureMap && window.featureMap.frames > 0")
    expect(page.locator("#map-status")).to_contain_text("40 features")
    # Pixels were drawn: the canvas is not blank where a point sits.
    x, y = _point_on_screen(page, 4)
    drawn = page.evaluate(
        """([index]) => {
            const map = window.featureMap, [px, py] = map.toScreen(map.index.indexOf(index));
            const pixel = map.ctx.getImageData(px | 0, py | 0, 1, 1).data;
            return [pixel[0], pixel[1], pixel[2]];
        }""",
        [4],
    )
    assert drawn != [250, 250, 248], drawn  # not the background
    page.mouse.move(x, y)
    expect(page.locator("#map-tooltip")).to_contain_text("mentions of cats #4")
    page.select_option("#map-colour", "cluster")
    expect(page.locator("#map-legend")).to_contain_text("cats")
    page.screenshot(path=str(shots / "source-map.png"), full_page=True)

    # Typing highlights the features whose explanation matches.
    page.fill("#map-filter", "dogs")
    expect(page.locator("#map-status")).to_contain_text("20 features match")

    # Box-select the left cluster (even indices: cats) and add it to a list.
    _set_key(page, explored["alice"])
    page.reload()
    page.wait_for_function("window.featureMap && window.featureMap.frames > 0")
    page.click("#map-modes button[data-mode='box']")
    box = page.locator("#feature-map").bounding_box()
    left = _point_on_screen(page, 0)[0]
    right = _point_on_screen(page, 1)[0]
    page.mouse.move(box["x"] + 4, box["y"] + 4)
    page.mouse.down()
    page.mouse.move((left + right) / 2, box["y"] + box["height"] - 4, steps=8)
    page.mouse.up()
    expect(page.locator("#selection-count")).to_have_text("20")
    assert all(
        int(t.split("#")[1]) % 2 == 0
        for t in page.locator("#selection-list .result a").all_inner_texts()
    )
    page.fill("#new-list-name", "Cats from the map")
    page.click("#add-selection")
    expect(page.locator("#selection-result a")).to_contain_text("Added 20 to Cats from the map")

    # Clicking a point opens its feature.
    page.click("#map-modes button[data-mode='pan']")
    page.mouse.click(*_point_on_screen(page, 5))
    expect(page.locator("#feature-title")).to_contain_text(f"{SOURCE} · 5")


def test_source_map_is_drawn_before_its_explanations_arrive(page, explored) -> None:
    """The map is painted from the packed coordinates alone; the tooltip and the highlight
    fill in once the explanations (held back here) arrive."""
    from playwright.sync_api import expect

    held = []
    page.route(f"**/api/umap/{MODEL}/{SOURCE}/explanations", lambda r: held.append(r))
    page.goto(f"/{MODEL}/{SOURCE}")
    page.wait_for_function("window.featureMap && window.featureMap.frames > 0")
    page.mouse.move(*_point_on_screen(page, 4))
    expect(page.locator("#map-tooltip")).to_contain_text("#4")
    expect(page.locator("#map-tooltip")).to_contain_text("loading explanation")
    page.fill("#map-filter", "dogs")
    expect(page.locator("#map-status")).to_contain_text("explanations still loading")
    assert len(held) == 1 and page.locator("#feature-map[data-explained]").count() == 0
    held[0].continue_()
    expect(page.locator("#feature-map[data-explained]")).to_have_count(1)
    expect(page.locator("#map-tooltip")).to_contain_text("mentions of cats #4")
    expect(page.locator("#map-status")).to_contain_text("20 features match")


def test_source_page_jump_search_and_features_on_text(page, explored) -> None:
    from playwright.sync_api import expect

    page.goto(f"/{MODEL}/{SOURCE}")
    page.fill("#search-query", "dogs")
    page.select_option("#search-mode", "keyword")
    page.click("#search-form button")
    expect(page.locator("#search-results .result").first).to_contain_text("dogs running home")
    page.fill("#jump-index", "12")
    page.click("#jump-form button")
    expect(page.locator("#feature-title")).to_contain_text(f"{SOURCE} · 12")


def test_source_page_features_on_a_text(page) -> None:
    """On a served source: a token strip, and each token's top features with explanations."""
    from playwright.sync_api import expect

    page.goto(f"/{SERVED_MODEL}/{SERVED_SOURCE}")
    page.fill("#text-input", "the cat sat")
    page.click("#text-form button")
    expect(page.locator("#token-strip .strip-token")).to_have_count(3)
    page.locator("#token-strip .strip-token").nth(1).click()
    expect(page.locator("#token-features h3")).to_contain_text("cat")
    first = page.locator("#token-features .result").first
    expect(first).to_contain_text(re.compile(r"#(\d+).*(mentions of cats|dogs running home) #\1"))


def test_model_page_links_into_its_sources(page, explored) -> None:
    from playwright.sync_api import expect

    page.goto(f"/{MODEL}")
    expect(page.locator("#evals-by-layer svg").first).to_be_visible()
    page.click(f"tr.source-row[data-source='{SOURCE}'] a")
    expect(page.locator("h1")).to_have_text(SOURCE)


def test_steer_with_a_custom_vector_from_its_page(page, live_server, seeded, shots: Path) -> None:
    """A vector made through the API has a page; its link opens the steer page with the
    vector (and its default strength) picked, and generating sends it and shows the texts."""
    import httpx
    from playwright.sync_api import expect

    made = httpx.post(
        f"{live_server.url}/api/vector/new",
        json={
            "modelId": SERVED_MODEL,
            "layerNumber": 4,
            "hookType": "hook_resid_pre",
            "vector": [0.05 * ((i % 7) - 3) for i in range(576)],
            "vectorDefaultSteerStrength": 8,
            "vectorLabel": "browser vector",
        },
        headers={"x-api-key": seeded["alice"]},
        timeout=30,
    )
    assert made.status_code == 200, made.text
    vector = made.json()["vector"]
    page.goto(f"/{SERVED_MODEL}/{vector['source']}/{vector['index']}")
    expect(page.locator("#vector-label")).to_contain_text("browser vector")
    page.click("#steer-link")
    expect(page.locator(".feature-row")).to_have_count(1)
    expect(page.locator(".feature-row")).to_contain_text(vector["source"])
    page.fill("#prompt", "The old house")
    page.fill("#n-tokens", "6")
    with page.expect_request(lambda r: r.url.endswith("/steer") and r.method == "POST") as sent:
        page.click("#steer-button")
    body = sent.value.post_data_json
    assert body["features"] == [
        {
            "modelId": SERVED_MODEL,
            "layer": vector["source"],
            "index": vector["index"],
            "strength": 8,
        }
    ]
    expect(page.locator("#steer-status")).to_have_text("Done.", timeout=60_000)
    expect(page.locator("#steer-error")).to_have_text("")
    assert page.locator("#out-steered").inner_text().startswith("The old house")
    page.screenshot(path=str(shots / "steer-vector.png"), full_page=True)


def test_explanation_panel_write_generate_score_vote_delete(page, seeded, shots: Path) -> None:
    from playwright.sync_api import expect

    page.goto(f"/{SERVED_MODEL}/{SERVED_SOURCE}/9")
    _set_key(page, seeded["alice"])
    page.reload()
    page.fill("#explanation-text", "my own words for feature nine")
    page.click("#explanation-write button")
    mine = page.locator(".explanation", has_text="my own words for feature nine")
    expect(mine).to_contain_text("human")

    # The chosen explainer writes it, and the panel says which one did.
    page.select_option("#explainer", "offline")
    page.click("#explanation-generate button")
    expect(page.locator(".explanation", has_text="interpedia-offline-v2")).to_have_count(1)

    mine.locator("button.vote").click()
    expect(mine.locator(".votes")).to_have_text("1")
    expect(page.locator(".explanation").first).to_contain_text("my own words")  # most voted

    mine.locator("select.scorer").select_option("embedding")
    mine.locator("button.score-button").click()
    expect(mine.locator(".score")).to_contain_text(re.compile(r"embedding [01]\.\d\d"))
    mine.locator("select.scorer").select_option("fuzz")
    mine.locator("button.score-button").click()
    expect(page.locator("#explanation-error")).to_contain_text("LLM")
    page.screenshot(path=str(shots / "feature-explanations.png"), full_page=True)

    mine.locator("button.delete").click()
    expect(mine).to_have_count(0)
    expect(page.locator(".explanation", has_text="interpedia-offline-v2")).to_have_count(1)
