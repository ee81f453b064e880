"""The graph page follows what is being made for its model without a reload, as `make demo`
makes it after the page is up: the transcoder run's tokens, per-layer metrics and layers
with dashboards (and the set, once registered, to make graphs with), and the example
graph's job (queued, running, failed with why, stored with a link). The real web API and
graph service (without a worker); rows are put at each state as the trainer's recorded run
and the graph worker leave them."""

from pathlib import Path

import pytest
from webapi_factories import (
    add_model,
    record_transcoder_step,
    register_transcoder_sources,
    transcoder_run,
)

from interpedia_testing.graph import queue_graph_job, report_graph_job

pytestmark = pytest.mark.browser

if not Path("/usr/bin/chromium").exists():
    pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)", allow_module_level=True)

MODEL, SET, SLUG = "activity-page", "tc-live", "demo-capital-of-france"


def _layers(fvu: float) -> dict[int, dict[str, float]]:
    return {
        0: {"fvu": fvu, "l0": 12.0, "dead_fraction": 0.25},
        1: {"fvu": fvu / 2, "l0": 8.0, "dead_fraction": 0.5},
    }


def test_the_page_follows_the_transcoders_and_the_example_graph_live(
    browser, activity_web, shots
) -> None:
    from playwright.sync_api import expect

    url, database_url = activity_web
    add_model(database_url, MODEL)
    run_id = transcoder_run(database_url, MODEL, SET, total_tokens=1000)
    record_transcoder_step(database_url, run_id, 1, 200, _layers(0.9))
    context = browser.new_context(base_url=url, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"/{MODEL}/graph")
    page.evaluate("() => { window.notReloaded = true; }")  # gone if the page reloads

    training = page.locator(f'.transcoder-training[data-set="{SET}"]')
    expect(training.locator(".training-status")).to_contain_text("200 of 1,000 tokens")
    expect(training.locator(".training-status")).to_contain_text("FVU 0.675")
    expect(training.locator(".progress > div")).to_have_attribute("style", "width:20.0%")
    expect(page.locator("#graph-jobs-panel")).to_be_hidden()
    expect(page.locator("#graph-generate")).to_be_disabled()  # no set to trace with yet
    training.locator("summary").click()  # the per-layer table stays open as it refreshes

    # Training moves on: tokens, the bar and the per-layer table follow.
    record_transcoder_step(database_url, run_id, 2, 600, _layers(0.5))
    expect(training.locator(".training-status")).to_contain_text("600 of 1,000 tokens")
    expect(training.locator(".progress > div")).to_have_attribute("style", "width:60.0%")
    expect(training.locator("tbody tr").nth(1)).to_have_text("10.2508.050.0%")
    expect(training.locator("details")).to_have_attribute("open", "")

    # Trained and registered: its layers' dashboards, then the example graph is queued.
    record_transcoder_step(database_url, run_id, 3, 1000, _layers(0.4), status="succeeded")
    register_transcoder_sources(database_url, MODEL, SET, layers=2, with_dashboards=1)
    expect(training.locator(".training-status")).to_contain_text("dashboards of 1 of 2 layers")
    expect(page.locator("#graph-set")).to_have_value(SET)  # graphs can be made with it now
    expect(page.locator("#graph-generate")).to_be_enabled()
    expect(page.locator("#no-sets")).to_have_count(0)
    job_id = queue_graph_job(database_url, MODEL, SLUG)
    job = page.locator("#graph-jobs-panel .graph-job")
    expect(job).to_have_text(f"{SLUG} queued")
    report_graph_job(database_url, job_id, "doing", done=3, total=12, message="backward passes")
    expect(job).to_contain_text(f"{SLUG} running 25% (3/12) · backward passes")
    expect(job.locator(".progress > div")).to_have_attribute("style", "width:25.0%")
    page.screenshot(path=str(shots / "graph-activity.png"), full_page=True)
    report_graph_job(database_url, job_id, "failed", message="failed: out of memory")
    expect(job).to_have_text(f"{SLUG} failed: out of memory")
    expect(job).to_have_class("graph-job error")

    # Asked again, it is stored: a link to its page, and it joins the graphs to pick.
    second = queue_graph_job(database_url, MODEL, "capital-again")
    expect(page.locator("#graph-jobs-panel .graph-job").first).to_contain_text("queued")
    report_graph_job(database_url, second, "succeeded", done=1, total=1, stored=True)
    link = page.locator("#graph-jobs-panel .graph-job").first.locator("a")
    expect(link).to_have_text("open the graph")
    expect(link).to_have_attribute("href", f"{url}/{MODEL}/graph?slug=capital-again")
    expect(page.locator('#graph-pick option[value="capital-again"]')).to_have_count(1)

    # Every layer has its dashboards: nothing of the set left to follow.
    register_transcoder_sources(database_url, MODEL, SET, layers=2, with_dashboards=2)
    expect(training).to_have_count(0)
    assert page.evaluate("() => window.notReloaded") is True
    context.close()
