"""The graph page in headless Chromium, against the real graph service: generate a graph from
a prompt, watch its progress, hover and click nodes, pin and group them, prune, save and
share a subgraph, steer pinned features. Nodes are found as a person finds them: by their
colour on the canvas, then hovering until the tooltip names one."""

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from graph_stack import GRAPH_MODEL

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not Path("/usr/bin/chromium").exists():
    pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)", allow_module_level=True)

# Feature nodes are drawn in this colour (static/graph.js COLORS.feature).
FEATURE_RGB = (234, 88, 12)


@pytest.fixture
def graph_page(browser, graph_web, seeded) -> Iterator:
    context = browser.new_context(base_url=graph_web.url, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"/{GRAPH_MODEL}/graph")
    page.evaluate("key => localStorage.setItem('interpedia-key', key)", seeded["alice"])
    page.reload()
    yield page
    context.close()


def _feature_pixels(page) -> list[tuple[int, int]]:
    """Canvas positions (CSS pixels) drawn in the feature colour."""
    return [
        tuple(p)
        for p in page.evaluate(
            """([r, g, b]) => {
              const canvas = document.getElementById("graph-canvas");
              const ratio = canvas.width / canvas.clientWidth;
              const context = canvas.getContext("2d");
              const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
              const found = [];
              for (let y = 0; y < canvas.height; y += 2) for (let x = 0; x < canvas.width; x += 2) {
                const i = (y * canvas.width + x) * 4;
                if (data[i] === r && data[i + 1] === g && data[i + 2] === b && data[i + 3] === 255)
                  found.push([Math.round(x / ratio), Math.round(y / ratio)]);
              }
              return found;
            }""",
            list(FEATURE_RGB),
        )
    ]


def _hover_features(page, count: int) -> list[tuple[int, int, str]]:
    """Hover feature-coloured pixels until `count` distinct nodes named themselves."""
    box = page.locator("#graph-canvas").bounding_box()
    found: dict[str, tuple[int, int, str]] = {}
    for x, y in _feature_pixels(page)[::7]:
        page.mouse.move(box["x"] + x, box["y"] + y)
        tooltip = page.locator("#graph-tooltip")
        if tooltip.is_visible() and tooltip.inner_text().startswith("L"):
            name = tooltip.inner_text().split(" · ")[0]
            found.setdefault(name, (box["x"] + x, box["y"] + y, name))
            if len(found) == count:
                break
    return list(found.values())


def _seed_dashboards(database_url: str, document: dict) -> None:
    """A dashboard (one example, an explanation) for every feature node of the graph."""
    source_set = document["metadata"]["info"]["transcoder_set"]
    with psycopg.connect(database_url) as conn:
        for node in document["nodes"]:
            if node["feature_type"] != "cross layer transcoder":
                continue
            layer, index, _ = (int(p) for p in node["node_id"].split("_"))
            source = f"{layer}-{source_set}"
            conn.execute(
                "INSERT INTO features (model_id, source_id, index, max_act) VALUES (%s, %s, %s, 2) "
                "ON CONFLICT DO NOTHING",
                (GRAPH_MODEL, source, index),
            )
            conn.execute(
                "INSERT INTO activations (model_id, source_id, index, tokens, values, max_value, "
                "max_value_token_index) VALUES (%s, %s, %s, %s, %s, 2, 1)",
                (
                    GRAPH_MODEL,
                    source,
                    index,
                    ["The", " capital", " of", " Spain"],
                    [0.0, 2.0, 0.5, 0.0],
                ),
            )
            conn.execute(
                "INSERT INTO explanations (model_id, source_id, index, description, type_name) "
                "VALUES (%s, %s, %s, %s, 'test')",
                (GRAPH_MODEL, source, index, f"capital cities (L{layer} #{index})"),
            )


def test_generate_a_graph_and_work_with_it(graph_page, graph_web, database_url, shots) -> None:
    from playwright.sync_api import expect

    page = graph_page
    expect(page.locator("#graph-set")).to_have_value("tc-web")
    page.check("#chat-mode")  # the chat editor shows turns; back to a plain prompt
    expect(page.locator("#chat-rows .chat-row")).to_have_count(2)
    page.uncheck("#chat-mode")
    page.fill("#graph-prompt", "The capital of France is")
    page.fill("#graph-nodes", "24")
    page.fill("#graph-slug", "browser-graph")
    page.click("#graph-generate")
    expect(page.locator("#graph-progress")).to_be_visible()
    expect(page.locator("#graph-cancel")).to_be_visible()
    expect(page.locator("#graph-canvas")).to_have_attribute(
        "data-loaded", "browser-graph", timeout=900_000
    )
    expect(page.locator("#graph-status")).to_contain_text("succeeded")
    expect(page.locator("#graph-title")).to_contain_text("The capital of France is")
    assert page.url.endswith(f"/{GRAPH_MODEL}/graph?slug=browser-graph")

    document = httpx.get(f"{graph_web.url}/api/graph/{GRAPH_MODEL}/browser-graph/json").json()
    _seed_dashboards(database_url, document)

    # Hover: the tooltip names a node; click: its feature, with explanation and example.
    nodes = _hover_features(page, 2)
    assert len(nodes) == 2, "no feature nodes to hover on the canvas"
    x, y, name = nodes[0]
    page.mouse.click(x, y)
    expect(page.locator("#node-detail")).to_contain_text(name)
    expect(page.locator("#node-detail .explanation")).to_contain_text("capital cities")
    expect(page.locator("#node-detail .tokens")).to_contain_text("The capital of Spain")
    link = page.locator("#node-detail a.feature-link")
    href = link.get_attribute("href")
    assert href.startswith(f"/{GRAPH_MODEL}/")
    # The link opens the node's feature page, with its examples.
    feature_page = httpx.get(graph_web.url + href, timeout=60)
    assert feature_page.status_code == 200
    assert "Top activations" in feature_page.text and "No examples." not in feature_page.text
    assert " capital" in feature_page.text

    # Pin two nodes (shift-click and the Pin button), group them into a labelled supernode.
    page.keyboard.down("Shift")
    page.mouse.click(x, y)
    page.keyboard.up("Shift")
    page.mouse.click(nodes[1][0], nodes[1][1])
    page.click("#node-pin")
    expect(page.locator("#pinned .pinned-node")).to_have_count(2)
    page.locator("#pinned input[type=checkbox]").nth(0).check()
    page.locator("#pinned input[type=checkbox]").nth(1).check()
    page.fill("#group-label", "capital")
    page.click("#group-make")
    expect(page.locator("#supernodes")).to_contain_text("capital")
    page.screenshot(path=str(shots / "graph-page.png"), full_page=True)

    # Prune: a lower threshold draws fewer feature nodes.
    before = len(_feature_pixels(page))
    page.evaluate(
        "() => { const s = document.getElementById('prune'); s.value = 0.3;"
        " s.dispatchEvent(new Event('input')); }"
    )
    expect(page.locator("#prune-value")).to_have_text("0.30")
    assert len(_feature_pixels(page)) < before

    # Steer the pinned features: default and steered generations side by side.
    expect(page.locator("#steer-rows .steer-row")).to_have_count(2)
    page.locator("#steer-rows input[type=number]").first.fill("400")
    page.fill("#steer-tokens", "4")
    page.click("#steer-run")
    expect(page.locator("#steer-default")).to_contain_text("Paris", timeout=120_000)
    expect(page.locator("#steer-steered")).to_contain_text("Steered")

    # Save the subgraph; its link opens the graph with the same pins and supernode.
    page.fill("#subgraph-name", "capital circuit")
    page.click("#subgraph-save")
    expect(page.locator("#share-url")).to_have_value(
        re.compile(re.escape(f"/{GRAPH_MODEL}/graph?slug=browser-graph&subgraph="))
    )
    shared = page.locator("#share-url").input_value()
    page.goto(shared)
    expect(page.locator("#pinned .pinned-node")).to_have_count(2)
    expect(page.locator("#supernodes")).to_contain_text("capital")
    expect(page.locator("#prune-value")).to_have_text("0.30")
