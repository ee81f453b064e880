"""The attention view of an attention (hook_z) SAE's feature page in headless Chromium, on the
real inference service: a head's pattern over the top example, drawn cell by cell as the
service computed it. The hook_z source is imported for this module and deleted after it."""

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from conftest import INFERENCE_SECRET, SERVED_MODEL, import_export
from sqlalchemy import delete
from webapi_factories import write_export

from interpedia_db.models import SourceSet

pytestmark = pytest.mark.browser

if not Path("/usr/bin/chromium").exists():
    pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)", allow_module_level=True)

SOURCE = "3-att-z"  # set `att-z`, its own: nothing else shows it, and it goes after the module
CELL, LABEL = 16, 90  # as attention.js draws


@pytest.fixture(scope="module")
async def attention_feature(seeded, db_sessionmaker, tmp_path_factory) -> AsyncIterator[str]:
    """Set up before the module's browser (whose event loop would refuse this later)."""
    root = tmp_path_factory.mktemp("attention-export")
    export = write_export(
        root, SERVED_MODEL, SOURCE, n_features=2, hook_name="blocks.3.attn.hook_z", seed=3
    )
    await import_export(db_sessionmaker, export, root / "work")
    yield f"/{SERVED_MODEL}/{SOURCE}/1"
    async with db_sessionmaker.begin() as session:
        await session.execute(
            delete(SourceSet).where(SourceSet.model_id == SERVED_MODEL, SourceSet.name == "att-z")
        )


def test_attention_view_draws_the_heads_pattern(
    attention_feature: str, page, shots: Path, real_services
) -> None:
    from playwright.sync_api import expect

    page.goto(attention_feature)
    expect(page.locator("#attention h2")).to_have_text("Attention")
    config = json.loads(page.locator("#attention-config").text_content() or "{}")
    assert config["layer"] == 3 and config["text"]
    direct = httpx.post(
        f"{real_services['inference']}/v1/activation/attention",
        json={"prompt": config["text"], "model": SERVED_MODEL, "layer": 3, "head": 2},
        headers={"x-secret-key": INFERENCE_SECRET},
        timeout=60,
    ).json()
    page.fill("#attention-head", "2")
    page.click("#attention-button")
    canvas = page.locator("#attention-canvas")
    n = direct["seq_len"]
    expect(canvas).to_have_attribute("data-entries", str(len(direct["attention_indices"])))
    assert canvas.get_attribute("data-tokens") == str(n) == str(len(direct["tokens"]))

    # the strongest pair outside the BOS row and column is drawn fully shaded, and named
    pairs = zip(direct["attention_indices"], direct["attention_values"], strict=True)
    flat, weight = max(((f, w) for f, w in pairs if f // n and f % n), key=lambda p: p[1])
    assert weight == pytest.approx(direct["max_activation"])
    q, k = divmod(flat, n)
    x, y = LABEL + k * CELL + 2, LABEL + q * CELL + 2
    pixel = page.evaluate(
        """([x, y]) => {
            const c = document.getElementById("attention-canvas");
            const r = window.devicePixelRatio || 1;
            return Array.from(c.getContext("2d").getImageData(x * r, y * r, 1, 1).data);
        }""",
        [x, y],
    )
    assert pixel[:3] == [249, 115, 22], pixel
    canvas.hover(position={"x": x + 4, "y": y + 4})
    tooltip = page.locator("#attention-tooltip")
    expect(tooltip).to_contain_text(f"{weight:.3f}")
    expect(tooltip).to_contain_text(json.dumps(direct["tokens"][k]))
    page.screenshot(path=str(shots / "feature-attention.png"), full_page=True)

    page.fill("#attention-head", "99")  # SmolLM2-135M has 9 heads
    page.click("#attention-button")
    expect(page.locator("#attention-error")).to_contain_text("out of range")
