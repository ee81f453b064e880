"""Direct feature attribution on an attention (hook_z) SAE's feature page in headless Chromium:
each token of the top example shaded by what it feeds the feature at its strongest token, as
the inference service computed it.

Kept cheap and apart from the session's services: its own inference process on the tiny
random model (2 layers, d_model 64) with a random SAE on layer 1's attn.hook_z, its own
database with one imported source for that SAE, and a web API server on both."""

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import INFERENCE_SECRET, import_export, live_app
from webapi_factories import write_export

from interpedia_db.connect import create_engine, create_sessionmaker
from interpedia_testing.servers import ThreadedServer, running_services

pytestmark = pytest.mark.browser

if not Path("/usr/bin/chromium").exists():
    pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)", allow_module_level=True)

MODEL, SOURCE, HOOK = "tiny-random", "1-att-z", "blocks.1.attn.hook_z"
D_SAE = 16


@pytest.fixture(scope="module")
async def dfa_database(make_database, tmp_path_factory) -> str:
    """A database holding only the hook_z source's export (set up before the browser's event
    loop, which would refuse this later)."""
    url = make_database("browser_dfa")
    root = tmp_path_factory.mktemp("dfa-export")
    export = write_export(
        root, MODEL, SOURCE, n_features=D_SAE, hook_name=HOOK, layers=2, dimension=64, seed=5
    )
    engine = create_engine(url)
    try:
        await import_export(create_sessionmaker(engine), export, root / "work")
    finally:
        await engine.dispose()
    return url


@pytest.fixture(scope="module")
def dfa_stack(dfa_database: str, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """(web API URL, inference URL): the tiny model's inference process with a random SAE at
    SOURCE, and a web API on it and on the module's database."""
    from interpedia_runtime.saes import save_random_sae

    root = tmp_path_factory.mktemp("dfa-services")
    sae = save_random_sae(root / "sae", d_in=64, d_sae=D_SAE, hook_name=HOOK, seed=7)
    env = {
        "INTERPEDIA_INFERENCE_MODEL_ID": MODEL,
        "INTERPEDIA_INFERENCE_SAE_SOURCES": str(sae),
        "INTERPEDIA_INFERENCE_SAE_SOURCE_SET": "att-z",
        "INTERPEDIA_INFERENCE_SECRET": INFERENCE_SECRET,
        "INTERPEDIA_INFERENCE_DEVICE": "cpu",
        "INTERPEDIA_INFERENCE_TORCH_THREADS": "1",
    }
    with running_services(["inference"], env, root / "logs") as urls:
        app = live_app(
            dfa_database,
            root / "web",
            inference_url=urls["inference"],
            inference_secret=INFERENCE_SECRET,
        )
        with ThreadedServer(app) as web:
            yield web.url, urls["inference"]


def test_dfa_view_shades_what_feeds_the_feature(dfa_stack, browser, shots: Path) -> None:
    from playwright.sync_api import expect

    web, inference = dfa_stack
    context = browser.new_context(base_url=web, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    # A feature whose strongest token is not the first: there (BOS) attention reads only
    # itself, and the view would have a single token to shade.
    for index in range(D_SAE):
        page.goto(f"/{MODEL}/{SOURCE}/{index}")
        config = json.loads(page.locator("#attention-config").text_content() or "{}")
        assert config["source"] == SOURCE and config["index"] == str(index) and config["text"]
        direct = httpx.post(
            f"{inference}/v1/activation/single",
            json={"prompt": config["text"], "model": MODEL, "source": SOURCE, "index": index},
            headers={"x-secret-key": INFERENCE_SECRET},
            timeout=60,
        ).json()["activation"]
        values, target = direct["dfa_values"], direct["dfa_target_index"]
        assert target == direct["max_value_index"] and len(values) > 2
        if target > 1:
            break
    assert target > 1, "every random feature peaks at the first tokens"
    assert all(v == 0 for v in values[target + 1 :])  # causal: later tokens feed nothing
    # the web API passes the inference service's DFA on under Neuronpedia's webapp names
    passed = httpx.post(
        f"{web}/api/activation/new",
        json={
            "feature": {"modelId": MODEL, "layer": SOURCE, "index": str(index)},
            "customText": config["text"],
        },
        timeout=60,
    ).json()
    assert passed["dfaValues"] == values and passed["dfaTargetIndex"] == target
    assert passed["dfaMaxValue"] == pytest.approx(max(values))

    page.click("#dfa-button")
    spans = page.locator("#dfa-tokens .tok")
    expect(spans).to_have_count(len(values))
    assert spans.evaluate_all("s => s.map(e => e.dataset.v)") == [f"{v:.3f}" for v in values]
    expect(spans.nth(target)).to_have_class("tok dfa-target")
    assert page.locator("#dfa-tokens .dfa-target").count() == 1

    # the largest magnitude is fully shaded, orange if it adds to the feature, blue if not
    strongest = max(range(len(values)), key=lambda i: abs(values[i]))
    color = "rgb(249, 115, 22)" if values[strongest] > 0 else "rgb(59, 130, 246)"
    background = spans.nth(strongest).evaluate("e => getComputedStyle(e).backgroundColor")
    assert background == color, background
    weakest = min(range(len(values)), key=lambda i: abs(values[i]))
    faint = spans.nth(weakest).evaluate("e => getComputedStyle(e).backgroundColor")
    assert faint != background
    page.screenshot(path=str(shots / "feature-dfa.png"), full_page=True)
    context.close()
