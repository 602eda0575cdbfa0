"""Screenshot of the exported page with a house drawn by mouse, for the README (docs/web.png).

    python -m benchmarks.figures.web_screenshot PAGE_DIR [--out docs/web.png]

PAGE_DIR is a folder written by `python -m quickdraw.export ckpt_path=... format=web out=PAGE_DIR`.
The page is served on loopback, opened in headless Chromium, and the house of
`benchmarks.figures.plotting` is drawn in three strokes; the shot is taken once guessing is idle
and the guess history has a row for each stroke.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.common import ROOT
from benchmarks.figures.plotting import HOUSE
from quickdraw.testing.browser import IDLE, draw, open_page


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("page", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "web.png")
    args = ap.parse_args()
    with open_page(args.page) as s:
        for stroke in HOUSE:
            draw(s.page, stroke)
        s.page.wait_for_function(IDLE)
        # The history follows each stroke on its own (one guess per new prefix): wait for all three.
        s.page.wait_for_function(f"window.quickdraw.history.steps.length === {len(HOUSE)}")
        s.page.screenshot(path=str(args.out))
        print(f"{args.out}: requests after load: {len(s.requests)}")


if __name__ == "__main__":
    main()
