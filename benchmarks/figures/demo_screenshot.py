"""Screenshot of the demo with a house drawn by mouse, for the README (docs/demo.png).

    python -m benchmarks.figures.demo_screenshot [--ckpt CKPT] [--out docs/demo.png]

Starts `python -m quickdraw.demo` on a free loopback port (default checkpoint: the one the demo
itself picks, by the rule of quickdraw/core/discovery.py), opens it in headless Chromium
(`/usr/bin/chromium`, Debian's package) through Playwright, draws a house in three strokes
with mouse events (walls, roof, door), waits for the guess and saves a full-page screenshot.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, running_demo
from benchmarks.figures.plotting import HOUSE
from quickdraw.testing.browser import BROWSER_ARGS, CHROMIUM, draw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ckpt", help="checkpoint (default: the demo's own pick, quickdraw/core/discovery.py)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "demo.png")
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright  # the tests extra

    checkpoint = [f"ckpt_path={args.ckpt}"] if args.ckpt else []
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_demo(Path(tmp), *checkpoint) as (url, _),
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        page.locator("#sketchpad canvas").wait_for(timeout=60_000)
        for stroke in HOUSE:
            draw(page, stroke, steps=12)
            time.sleep(0.3)
        expect(page.locator("#status")).to_contain_text("3 strokes", timeout=30_000)
        time.sleep(1.0)  # the last guess's bars finish their transition
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out), full_page=True)
        top = page.locator('#guesses [data-testid="label-output-value"]').inner_text()
        browser.close()
    print(f"top guess: {top}; wrote {args.out}")


if __name__ == "__main__":
    main()
