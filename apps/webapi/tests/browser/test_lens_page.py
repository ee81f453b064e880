"""The logit-lens page in headless Chromium, on the real inference service (the packaged
SmolLM2-135M): the heatmap fills in while the lens streams, each cell shows the lens's top
token shaded by its probability, hover and click give the top-N, steering changes what is
drawn, and the raw-activation export downloads the same numbers as JSON and as .npy."""

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import INFERENCE_SECRET, SERVED_MODEL

pytestmark = pytest.mark.browser

if not Path("/usr/bin/chromium").exists():
    pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)", allow_module_level=True)

N_LAYERS = 30  # SmolLM2-135M
CELL_W, CELL_H, GUTTER, HEADER = 76, 22, 44, 26  # as lens.js draws
PROMPT = "The capital of France is"
LONG_PROMPT = " ".join(["The quick brown fox jumps over the lazy dog."] * 5)


def _direct_lens(real_services: dict[str, str], **extra: object) -> dict:
    """The inference service's own answer, to compare the drawing with."""
    body = {"model": SERVED_MODEL, "prompt": PROMPT, "top_n": 5, "stream": False, **extra}
    response = httpx.post(
        f"{real_services['inference']}/v1/lens/prompt",
        json=body,
        headers={"x-secret-key": INFERENCE_SECRET},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    return response.json()


def _cell(position: int, layer_row: int) -> dict[str, float]:
    """Canvas coordinates (CSS px) of the middle of a cell; row 0 is layer 0, at the bottom."""
    return {
        "x": GUTTER + position * CELL_W + CELL_W / 2,
        "y": HEADER + (N_LAYERS - 1 - layer_row) * CELL_H + CELL_H / 2,
    }


def _pixel(page, point: dict[str, float]) -> list[int]:
    return page.evaluate(
        """([x, y]) => {
            const c = document.getElementById("lens-canvas");
            const r = window.devicePixelRatio || 1;
            return Array.from(c.getContext("2d").getImageData(x * r, y * r, 1, 1).data);
        }""",
        [point["x"] - CELL_W / 2 + 2, point["y"] - CELL_H / 2 + 2],  # a corner: no text there
    )


def _run(page) -> None:
    from playwright.sync_api import expect

    page.click("#lens-run")
    expect(page.locator("#lens-status")).to_contain_text("Done", timeout=90_000)


def test_lens_heatmap_streams_and_shows_the_lens(page, shots: Path, real_services) -> None:
    from playwright.sync_api import expect

    page.goto("/lens")
    assert page.locator("#lens-model option").all_inner_texts() == [SERVED_MODEL]

    # filled in as the stream arrives: the canvas is drawn with part of the positions first
    page.fill("#lens-prompt", LONG_PROMPT)
    page.evaluate(
        """() => {
            window.filled = [];
            const c = document.getElementById("lens-canvas");
            new MutationObserver(() => window.filled.push(Number(c.dataset.filled)))
              .observe(c, {attributes: true, attributeFilter: ["data-filled"]});
        }"""
    )
    _run(page)
    total = int(page.locator("#lens-canvas").get_attribute("data-positions") or 0)
    assert total > 32
    filled = page.evaluate("window.filled")
    assert filled[-1] == total and any(0 < n < total for n in filled), filled

    direct = _direct_lens(real_services, filter_non_word_tokens=True)
    page.fill("#lens-prompt", PROMPT)
    _run(page)
    canvas = page.locator("#lens-canvas")
    assert canvas.get_attribute("data-layers") == str(N_LAYERS)
    last = len(direct["tokens"]) - 1
    assert canvas.get_attribute("data-positions") == str(last + 1)
    # the drawn cell is shaded by its top probability: darker orange for a surer layer
    top = direct["tokens"][last]["results"][0]
    probs = [row[0] for row in top["top_probs"]]
    sure, unsure = probs.index(max(probs)), probs.index(min(probs))
    sure_px, unsure_px = _pixel(page, _cell(last, sure)), _pixel(page, _cell(last, unsure))
    assert sure_px[0] > sure_px[2] + 60, sure_px  # orange, not the empty background
    assert sure_px[2] < unsure_px[2], (sure_px, unsure_px)  # more saturated

    # hover shows the top-N of the last layer: the model's own prediction first
    canvas.hover(position=_cell(last, N_LAYERS - 1))
    tooltip = page.locator("#lens-tooltip")
    expect(tooltip).to_be_visible()
    expected = top["top_tokens"][-1]
    assert tooltip.locator("li").all_inner_texts()[0].startswith(json.dumps(expected[0]))
    canvas.click(position=_cell(last, N_LAYERS - 1))
    items = page.locator("#lens-detail li").all_inner_texts()
    assert [item.rsplit(" ", 1)[0] for item in items] == [json.dumps(t) for t in expected]
    page.screenshot(path=str(shots / "lens.png"), full_page=True)

    # steering along a token at three layers: the last layer now reads that token first
    page.fill("#lens-steer-tokens", " cat")
    page.fill("#lens-steer-strength", "3")
    page.fill("#lens-steer-layers", "10-12")
    _run(page)
    canvas.click(position=_cell(last, N_LAYERS - 1))
    assert page.locator("#lens-detail li").first.inner_text().startswith('" cat"')
    page.screenshot(path=str(shots / "lens-steered.png"), full_page=True)


def test_lens_page_chat_and_bad_input(page) -> None:
    from playwright.sync_api import expect

    page.goto("/lens")
    page.click(".modes button[data-mode=chat]")
    page.fill("#lens-chat", "user: Name a colour.")
    page.fill("#lens-layers", "0, 10-12")
    _run(page)
    assert page.locator("#lens-canvas").get_attribute("data-layers") == "5"  # and the last
    page.fill("#lens-layers", "40")
    page.click("#lens-run")
    expect(page.locator("#lens-error")).to_contain_text("out of range")
    page.fill("#lens-chat", "hello")
    page.click("#lens-run")
    expect(page.locator("#lens-error")).to_contain_text("start each message")


def test_raw_activation_export_json_and_npy_agree(page, tmp_path: Path) -> None:
    page.goto("/lens")
    page.fill("#lens-prompt", PROMPT)
    page.fill("#raw-layers", "0, 6")
    downloaded = {}
    for fmt in ("json", "npy"):
        with page.expect_download() as info:
            page.click(f"#raw-{fmt}")
        path = tmp_path / f"raw.{fmt}"
        info.value.save_as(path)
        downloaded[fmt] = path
    exported = json.loads(downloaded["json"].read_text())
    array = np.load(downloaded["npy"], allow_pickle=False)
    assert exported["layers"] == [0, 6] and exported["hookPoint"] == "residual_stream"
    assert list(array.shape) == exported["shape"] == [2, len(exported["tokens"]), 576]
    assert array.dtype == np.float32
    np.testing.assert_allclose(array, np.asarray(exported["values"]), rtol=1e-6, atol=1e-6)
    assert np.abs(array).max() > 0
