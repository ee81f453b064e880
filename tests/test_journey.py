"""The newcomer's journey: `interpedia demo` at a reduced size, then the pages in Chromium.

The demo runs its real pipeline (train on the packaged SmolLM2, dashboards, offline
explanations, embeddings, scores) as it does for `make demo`, only smaller, and then
serves every service. The browser goes home → search by meaning → feature page (shaded
examples) → test custom text → steer with the feature → add it to a list. Screenshots go
to `artifacts/screenshots/journey-*.png`.
"""

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from interpedia_testing.platform import start_platform

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
MODEL, SOURCE = "smollm2-135m", "6-res-demo"
ADMIN_KEY = "journey-admin-key-0123456789"
DEMO_SIZE = {
    "INTERPEDIA_DEMO_D_SAE": "512",
    "INTERPEDIA_DEMO_K": "16",
    "INTERPEDIA_DEMO_TRAIN_TOKENS": "98304",
    "INTERPEDIA_DEMO_DASHBOARD_PROMPTS": "64",
    "INTERPEDIA_DEMO_SCORE_SAMPLE": "8",
    # The transcoder set and example graph have their own test (test_demo_transcoders.py).
    "INTERPEDIA_DEMO_TRANSCODERS": "false",
}

if not CHROMIUM.exists():
    pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def demo(server_root_factory) -> Iterator[str]:
    """`interpedia demo` on a fresh data folder; yields the web address."""
    extra = {"INTERPEDIA_WEBAPI_ADMIN_BOOTSTRAP_KEY": ADMIN_KEY, **DEMO_SIZE}
    running = start_platform("demo", server_root_factory(), ROOT, extra, timeout=900)
    children = psutil.Process(running.process.pid).children(recursive=True)
    yield running.url("webapi")
    running.process.send_signal(signal.SIGINT)
    running.process.wait(timeout=60)
    _, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, f"the demo left processes running: {[p.pid for p in alive]}"


@pytest.fixture(scope="module")
def page(demo: str) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        context = browser.new_context(base_url=demo, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def _explained_feature(base_url: str) -> tuple[int, str]:
    """A demo feature that fired and got an explanation, found through the public API."""
    for index in range(int(DEMO_SIZE["INTERPEDIA_DEMO_D_SAE"])):
        feature = httpx.get(f"{base_url}/api/feature/{MODEL}/{SOURCE}/{index}", timeout=30).json()
        if feature.get("explanations") and (feature.get("maxActApprox") or 0) > 0:
            return index, feature["explanations"][0]["description"]
    raise AssertionError("no demo feature has an explanation")


def test_journey(demo: str, page) -> None:
    from playwright.sync_api import expect

    shots = ROOT / "artifacts" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.goto("/")
    expect(page.locator(f"section.model[data-model='{MODEL}']")).to_contain_text(SOURCE)
    page.screenshot(path=str(shots / "journey-home.png"), full_page=True)

    # Search by meaning: an explanation's own words find its feature first or near it.
    index, description = _explained_feature(demo)
    page.goto("/search")
    page.fill("#query", description)
    page.select_option("#search-mode", "semantic")
    page.click("#explanation-form button")
    hit = page.locator(f"#explanation-results .result a[href='/{MODEL}/{SOURCE}/{index}']")
    expect(hit.first).to_be_visible()
    page.screenshot(path=str(shots / "journey-search.png"), full_page=True)
    hit.first.click()

    # The feature page: its top examples are shaded by activation.
    expect(page.locator("#feature-title")).to_contain_text(f"{SOURCE} · {index}")
    expect(page.locator("#explanations")).to_contain_text(description)
    expect(page.locator("#top-activations .tokens").first).to_be_visible()
    top = page.locator("#top-activations .tok")
    values = [float(v or 0) for v in top.evaluate_all("els => els.map(e => e.dataset.v)")]
    assert max(values) > 0
    assert page.locator("#top-activations .tok[style*='rgba']").count() > 0

    # Test custom text: the strongest example's own text lights the feature up again.
    example = page.locator("#top-activations .tokens").first.evaluate(
        "el => [...el.querySelectorAll('.tok')].slice(1).map(t => t.textContent).join('')"
    )  # every token but BOS, hidden ones included
    page.fill("#custom-text", example)
    page.click("#test-button")
    custom = page.locator("#custom-result .tok")
    expect(custom.first).to_be_visible()
    custom_values = [float(v or 0) for v in custom.evaluate_all("els => els.map(e => e.dataset.v)")]
    assert max(custom_values) > 0
    page.screenshot(path=str(shots / "journey-feature.png"), full_page=True)

    # Steer with the feature: the steered text differs from the default one.
    page.click("a[href^='/steer?']")
    expect(page.locator(".feature-row")).to_have_count(1)
    page.fill("#multiplier", "40")
    page.fill("#n-tokens", "16")
    page.fill("#prompt", "The President said")
    page.click("#steer-button")
    expect(page.locator("#steer-status")).to_contain_text("Done", timeout=120_000)
    steered = page.locator("#out-steered").inner_text()
    default = page.locator("#out-default").inner_text()
    assert steered.startswith("The President said") and default.startswith("The President said")
    assert steered != default
    page.screenshot(path=str(shots / "journey-steer.png"), full_page=True)

    # Add it to a list (writes need an API key).
    page.goto(f"/{MODEL}/{SOURCE}/{index}")
    page.evaluate("key => localStorage.setItem('interpedia-key', key)", ADMIN_KEY)
    page.reload()
    page.fill("#new-list-name", "Journey")
    page.click("#add-to-list-button")
    added = page.locator("#add-to-list-result a")
    expect(added).to_contain_text("Added to Journey")
    added.click()
    expect(page.locator("tr.list-item")).to_have_count(1)
    expect(page.locator("tr.list-item")).to_contain_text(f"{MODEL}/{SOURCE}/{index}")
    page.screenshot(path=str(shots / "journey-list.png"), full_page=True)


def _wait_for_map(base_url: str, timeout: float = 900) -> dict:
    """The demo source's map: the dashboards step queued it, the worker computes it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(f"{base_url}/api/umap/{MODEL}/{SOURCE}", timeout=60)
        if response.status_code == 200:
            return response.json()
        assert response.status_code == 404, response.text
        time.sleep(5)
    raise AssertionError("the worker did not store the demo source's feature map in time")


def test_the_demo_source_has_a_map_drawn_in_the_browser(demo: str, page) -> None:
    from playwright.sync_api import expect

    points = _wait_for_map(demo)
    d_sae = int(DEMO_SIZE["INTERPEDIA_DEMO_D_SAE"])
    assert points["index"] == list(range(d_sae))  # every feature has coordinates
    assert all(v == v for v in points["x"] + points["y"])  # and none is NaN

    page.goto(f"/{MODEL}/{SOURCE}")
    page.wait_for_function("window.featureMap && window.featureMap.frames > 0")
    page.select_option("#map-colour", "cluster")
    shots = ROOT / "artifacts" / "screenshots"
    page.locator("#map-panel").screenshot(path=str(shots / "journey-feature-map.png"))
    box = page.locator("#feature-map").bounding_box()
    x, y = page.evaluate(
        """() => {
            const map = window.featureMap, [px, py] = map.toScreen(7);
            return [px / map.ratio, py / map.ratio];
        }"""
    )
    page.mouse.click(box["x"] + x, box["y"] + y)
    expect(page.locator("#feature-title")).to_contain_text(f"{SOURCE} · {points['index'][7]}")
