"""The steer page's chat mode and logprobs in headless Chromium, on the real inference
service: chat messages are steered with the method picked, both conversations stream into
the page, and each generated token can show its probability and the alternatives."""

import time
from pathlib import Path

import pytest
from conftest import SERVED_MODEL, SERVED_SOURCE

pytestmark = pytest.mark.browser

if not Path("/usr/bin/chromium").exists():
    pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)", allow_module_level=True)


def test_steer_chat_mode_sends_messages_and_method(page, shots: Path) -> None:
    from playwright.sync_api import expect

    page.goto(f"/steer?model={SERVED_MODEL}&source={SERVED_SOURCE}&index=4")
    page.click(".modes button[data-mode=chat]")
    expect(page.locator("#prompt")).to_be_hidden()
    page.fill("#chat", "system: You are terse.\nuser: Name a fruit.")
    page.select_option("#steer-method", "ORTHOGONAL_DECOMP")
    page.fill("#n-tokens", "6")
    page.fill("#seed", str(int(time.time())))  # never from the cache
    with page.expect_request(
        lambda r: r.url.endswith("/steer-chat") and r.method == "POST"
    ) as sent:
        page.click("#steer-button")
    body = sent.value.post_data_json
    assert body["steer_method"] == "ORTHOGONAL_DECOMP" and "prompt" not in body
    expected = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a fruit."},
    ]
    assert body["steeredChatMessages"] == body["defaultChatMessages"] == expected
    expect(page.locator("#steer-status")).to_have_text("Done.", timeout=60_000)
    expect(page.locator("#steer-error")).to_have_text("")
    for side in ("#out-default", "#out-steered"):
        text = page.locator(side).inner_text()
        assert "Name a fruit." in text and len(text) > len("You are terse.Name a fruit."), text
    page.screenshot(path=str(shots / "steer-chat.png"), full_page=True)

    page.fill("#chat", "Name a fruit.")  # no role
    page.click("#steer-button")
    expect(page.locator("#steer-error")).to_contain_text("start each message")


def test_steer_shows_logprobs_per_generated_token(page) -> None:
    from playwright.sync_api import expect

    page.goto(f"/steer?model={SERVED_MODEL}&source={SERVED_SOURCE}&index=4")
    page.fill("#prompt", "The weather today")
    page.fill("#n-tokens", "5")
    page.fill("#n-logprobs", "3")
    page.fill("#temperature", "0")
    page.fill("#seed", str(int(time.time())))
    with page.expect_request(lambda r: r.url.endswith("/steer") and r.method == "POST") as sent:
        page.click("#steer-button")
    assert sent.value.post_data_json["n_logprobs"] == 3
    expect(page.locator("#steer-status")).to_have_text("Done.", timeout=60_000)
    for side in ("default", "steered"):
        tokens = page.locator(f"#lp-{side} .tok")
        text = page.locator(f"#out-{side}").inner_text()
        assert 1 <= tokens.count() <= 5
        assert text.endswith("".join(tokens.all_inner_texts()))  # the generated tokens
        for token in tokens.all():
            p = float(token.get_attribute("data-p") or "nan")
            assert 0 < p <= 1
            alternatives = (token.get_attribute("title") or "").split("\n")
            assert len(alternatives) == 3 and all(a.endswith("%") for a in alternatives)
