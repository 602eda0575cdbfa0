"""Screenshot of the demo with a house drawn by mouse, for the README (docs/demo.png).

    python scripts/demo_screenshot.py [--ckpt CKPT] [--out docs/demo.png]

Starts ``python -m quickdraw.demo`` on a free loopback port (default checkpoint: the best of the
most recent training run, as the demo itself picks it), opens it in headless Chromium
(``/usr/bin/chromium``, Debian's package) through Playwright, draws a house in three strokes
with mouse events (walls, roof, door), waits for the guess and saves a full-page screenshot.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOUSE = [  # strokes as fractions of the canvas, in drawing order
    [(0.25, 0.45), (0.25, 0.85), (0.75, 0.85), (0.75, 0.45), (0.25, 0.45)],
    [(0.2, 0.47), (0.5, 0.15), (0.8, 0.47)],
    [(0.45, 0.85), (0.45, 0.65), (0.56, 0.65), (0.56, 0.85)],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", help="checkpoint (default: best of the latest training run)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "demo.png")
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "quickdraw.demo",
            f"server_port={port}",
            f"hydra.run.dir={tmp}",
        ]
        if args.ckpt:
            cmd.append(f"ckpt_path={args.ckpt}")
        server = subprocess.Popen(cmd, cwd=ROOT)
        try:
            url = f"http://127.0.0.1:{port}/"
            for _ in range(360):
                if server.poll() is not None:
                    sys.exit(f"the demo exited with {server.returncode}")
                try:
                    urllib.request.urlopen(url, timeout=2).close()
                    break
                except OSError:
                    time.sleep(0.5)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(url)
                canvas = page.locator("#sketchpad canvas")
                canvas.wait_for(timeout=60_000)
                box = canvas.bounding_box()
                for stroke in HOUSE:
                    xy = [
                        (box["x"] + u * box["width"], box["y"] + v * box["height"])
                        for u, v in stroke
                    ]
                    page.mouse.move(*xy[0])
                    page.mouse.down()
                    for x, y in xy[1:]:
                        page.mouse.move(x, y, steps=12)
                    page.mouse.up()
                    time.sleep(0.3)
                expect(page.locator("#status")).to_contain_text("3 strokes", timeout=30_000)
                time.sleep(1.0)  # the last guess's bars finish their transition
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=True)
                top = page.locator('#guesses [data-testid="label-output-value"]').inner_text()
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"top guess: {top}; wrote {args.out}")


if __name__ == "__main__":
    main()
