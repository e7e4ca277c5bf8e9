"""Screenshot of the nmt-serve page on a real checkpoint, for the README and docs/serve.md.

    python scripts/serve_screenshot.py --checkpoint runs/small_additive/checkpoints/best.pt \\
        --text "Ein Mann mit einem orangefarbenen Hut starrt auf etwas." --hover 3 --out docs/images/serve.png

Starts `nmt-serve` on a free loopback port, opens the page in Debian's headless Chromium (through
Playwright), types the sentence, translates it with the given beam, picks the word or subword view,
rests the pointer on target token `--hover`, and saves a full-page PNG. It prints the translation and
the weights of the hovered row, so the caption can state what the picture shows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from load_test import start_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--text", required=True, help="the source sentence to type")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--level", choices=["word", "subword"], default="word")
    parser.add_argument("--hover", type=int, default=0, help="index of the target token to point at")
    parser.add_argument("--out", type=Path, default=Path("serve.png"))
    parser.add_argument("--width", type=int, default=1100)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    args.out.parent.mkdir(parents=True, exist_ok=True)
    process, url = start_server(args.checkpoint, ["device=cpu", "num_threads=1"], args.out.with_suffix(".log"))
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": 800})
            page.goto(url)
            page.wait_for_selector("body[data-state=ready]")
            page.fill("#source", args.text)
            page.fill("#beam", str(args.beam))
            page.click("#translate")
            page.wait_for_selector("body[data-state=done]", timeout=60_000)
            page.check(f"#level-{args.level}")
            tokens = page.locator("#tgt-tokens .tok").all_text_contents()
            page.hover(f"#tgt-tokens .tok >> nth={args.hover}")
            weights = page.eval_on_selector_all(
                "#src-tokens .tok", "els => els.map(e => [e.textContent, parseFloat(e.style.getPropertyValue('--w') || '0')])")
            page.screenshot(path=str(args.out), full_page=True)
            print(json.dumps({"translation": page.inner_text("#translation"), "target_tokens": tokens,
                              "hovered": tokens[args.hover], "source_weights": weights,
                              "model": page.inner_text("#model-info")}, ensure_ascii=False))
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
