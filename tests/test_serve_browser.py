"""The attention page in a real browser: Debian's headless Chromium, driven by Playwright, against a real
`nmt-serve` (uvicorn) started on a free loopback port. Without Chromium the test skips locally and fails
in CI (CI=true), where .ci/run installs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_serve_api import SOURCES, build_tiny_checkpoint, write_bleu_reports

CHROMIUM = "/usr/bin/chromium"
# Headless, and quiet: with no network here, Chromium's background services would only fail to connect.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must run the browser test; .ci/run installs Debian's chromium)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Base URL of nmt-serve on a tiny checkpoint; the server is stopped after the module."""
    folder = tmp_path_factory.mktemp("serve_browser")
    checkpoint = build_tiny_checkpoint(folder / "best.pt")
    write_bleu_reports(folder)
    port = free_port()
    log = (folder / "server.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "nmt.cli.serve", f"checkpoint={checkpoint}", f"port={port}",
                                "device=cpu", "num_threads=1", "log_level=warning"], stdout=log, stderr=subprocess.STDOUT,
                               cwd=folder)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"nmt-serve exited with {process.returncode}:\n{(folder / 'server.log').read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("nmt-serve did not answer /health within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        missing(f"{CHROMIUM} not found: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def weights_of(page, selector: str) -> list[float]:
    """The highlight weight (CSS variable --w) of each element matching selector."""
    return page.eval_on_selector_all(
        selector, "els => els.map(e => parseFloat(e.style.getPropertyValue('--w') || '0'))")


def test_a_typed_sentence_gets_its_translation_and_an_interactive_heatmap(browser, server, tmp_path):
    expected = httpx.post(f"{server}/translate", json={"text": SOURCES[0], "beam_size": 3,
                                                       "return_attention": True}).json()["translations"][0][0]
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(server)
    page.wait_for_selector("body[data-state=ready]")
    info = page.inner_text("#model-info")
    assert "additive attention" in info
    assert ("BLEU 12.8 on test_2016_flickr (beam 5, coverage penalty 0.2, no repeated 3-grams) · "
            "BLEU 12.5 on test_2016_flickr (beam 5) · BLEU 13.0 on test_2016_flickr (beam 5, length penalty 1.5)") in info

    page.fill("#source", SOURCES[0])
    page.fill("#beam", "3")
    page.click("#translate")
    page.wait_for_selector("body[data-state=done]", timeout=30_000)
    assert page.inner_text("#translation") == expected["text"] == "A dog runs across the meadow."

    # Subword level: one cell per (target piece, source piece), labelled with the pieces.
    src, tgt = expected["src_pieces"], expected["tgt_pieces"]
    assert page.locator("#heatmap td.cell").count() == len(tgt) * len(src)
    assert page.locator("#heatmap th.src").all_text_contents() == src
    assert page.locator("#heatmap th.tgt").all_text_contents() == tgt

    # Hovering target piece 2 lights each source piece by the weight that row gives it ...
    page.hover("#tgt-tokens .tok >> nth=2")
    assert weights_of(page, "#src-tokens .tok") == pytest.approx(expected["attention"][2], abs=1e-6)
    # ... and hovering source piece 1 lights each target piece by the weight it gives that piece.
    page.hover("#src-tokens .tok >> nth=1")
    column = [row[1] for row in expected["attention"]]
    assert weights_of(page, "#tgt-tokens .tok") == pytest.approx(column, abs=1e-6)

    # Word level: the server's merged matrix, one cell per (target word, source word).
    page.check("#level-word")
    words = expected["word_attention"]
    assert page.locator("#heatmap td.cell").count() == len(words["tgt_words"]) * len(words["src_words"])
    assert page.locator("#src-tokens .tok").all_text_contents() == words["src_words"]
    page.hover("#heatmap th.tgt >> nth=0")
    assert weights_of(page, "#heatmap th.src") == pytest.approx(words["weights"][0], abs=1e-6)

    page.check("#level-subword")
    page.hover("#tgt-tokens .tok >> nth=0")
    screenshot = page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)
    assert screenshot[:8] == b"\x89PNG\r\n\x1a\n" and len(screenshot) > 10_000
    # Nothing but the server itself: no CDN, fonts or trackers.
    assert requested and all(url.startswith(server + "/") for url in requested), requested

    # Zero-width spaces are not blank to the page but encode to nothing: no attention comes back, and
    # the previous sentence's heatmap must go.
    page.fill("#source", "\u200b\u200b")
    page.click("#translate")
    page.locator("#heatmap td.cell").first.wait_for(state="detached", timeout=30_000)  # (no eval: the page's CSP)
    assert page.inner_text("#translation") == "" and page.locator("#src-tokens .tok").count() == 0


def test_a_limit_shows_the_servers_error_on_the_page(browser, server):
    page = browser.new_page()
    page.goto(server)
    page.wait_for_selector("body[data-state=ready]")
    page.fill("#beam", "50")  # above the server's limit (10); the page passes it on
    page.click("#translate")
    page.wait_for_selector("body[data-state=error]")
    assert "beam_size=50; the limit is 10" in page.inner_text("#error")


def test_begins_with_steers_the_translation_and_a_click_keeps_its_start(browser, server):
    """Interactive translation: the page sends "Begins with" as the prefix, and clicking a target token
    puts the translation up to that token there."""
    expected = httpx.post(f"{server}/translate", json={"text": SOURCES[0], "beam_size": 3, "prefix": "The cat",
                                                       "return_attention": True}).json()["translations"][0][0]
    assert expected["text"].startswith("The cat")
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(server)
    page.wait_for_selector("body[data-state=ready]")
    page.fill("#source", SOURCES[0])
    page.fill("#beam", "3")
    page.fill("#prefix", "The cat")
    page.press("#prefix", "Enter")
    page.wait_for_selector("body[data-state=done]", timeout=30_000)
    assert page.inner_text("#translation") == expected["text"]
    assert "begins with the given start" in page.inner_text("#result-meta")
    assert page.locator("#tgt-tokens .tok").all_text_contents() == expected["tgt_pieces"]

    # A click keeps the text up to the token, with a space after it when its word is whole there.
    pieces = expected["tgt_pieces"]
    for i in range(len(pieces) - 1):
        page.click(f"#tgt-tokens .tok >> nth={i}")
        text = "".join(pieces[: i + 1]).replace("\u2581", " ").strip()
        whole = pieces[i + 1] == "</s>" or pieces[i + 1].startswith("\u2581")
        assert page.input_value("#prefix") == (text + " " if whole else text)
    page.check("#level-word")
    page.click("#tgt-tokens .tok >> nth=1")
    assert page.input_value("#prefix") == " ".join(expected["word_attention"]["tgt_words"][:2]) + " "

    # The trailing space reaches the server: the page's translation is the API's for "The ca ", which
    # differs from the one for "The ca" (where this model lengthens "ca").
    def api(prefix):
        return httpx.post(f"{server}/translate", json={"text": SOURCES[0], "beam_size": 3, "prefix": prefix,
                                                       "return_attention": True}).json()["translations"][0][0]
    whole, partial = api("The ca "), api("The ca")
    page.fill("#prefix", "The ca ")
    page.press("#prefix", "Enter")
    page.wait_for_selector(f"#translation:text-is('{whole['text']}')", timeout=30_000)
    assert page.locator("#tgt-tokens .tok").all_text_contents() == whole["word_attention"]["tgt_words"]
    assert whole["text"] != partial["text"], "the space should change this model's translation"

    # An empty "Begins with" translates freely again.
    page.fill("#prefix", "")
    page.click("#translate")
    page.wait_for_selector("#translation:text-is('A dog runs across the meadow.')", timeout=30_000)
